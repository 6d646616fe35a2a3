/** The Graph side's one owner of ordering and of "only what changed": PresenceState, a pure per-Teams-user state. */
import { assert, describe, it } from "@effect/vitest"
import type { GraphPresence } from "../../src/domain/Presence.ts"
import { isStale, type PresenceOrigin, PresenceState } from "../../src/graph/presence/PresenceState.ts"

const presence = (id: string, activity: "Available" | "Busy" | "Away", sequenceNumber?: string): GraphPresence => ({
  id,
  availability: activity,
  activity,
  ...(sequenceNumber !== undefined ? { sequenceNumber } : {})
})

const apply = (state: PresenceState, origin: PresenceOrigin, ...presences: ReadonlyArray<GraphPresence>) => {
  const { changes, stale } = state.apply(presences.map((p) => ({ presence: p, receivedAt: 0 })), origin)
  return { changes: changes.map((c) => `${c.userId} ${String(c.presence.activity)} ${c.origin}`), stale: stale.map((p) => p.sequenceNumber) }
}

describe("PresenceState", () => {
  it("a pushed presence numbered like or below the applied one is stale; a read only when below", () => {
    assert.isTrue(isStale("A2", "A1", "push"))
    assert.isTrue(isStale("A2", "A2", "push"))
    assert.isFalse(isStale("A2", "A3", "push"))
    assert.isTrue(isStale("A2", "A1", "reconcile"))
    assert.isFalse(isStale("A2", "A2", "reconcile"))
    assert.isFalse(isStale(undefined, "A1", "push"))
    assert.isFalse(isStale("A2", null, "push"))
    assert.isFalse(isStale("", "A1", "push"))
  })

  it("emits only differences per user, keyed case-insensitively, and refuses stale pushes", () => {
    const state = new PresenceState()
    state.setUsers(["AAAA-1", "bbbb-2"])
    assert.deepStrictEqual(apply(state, "initial", presence("aaaa-1", "Available", "A1"), presence("BBBB-2", "Available", "A1")), {
      changes: ["aaaa-1 Available initial", "BBBB-2 Available initial"],
      stale: []
    })
    // newer and different: a change; the same again (a duplicate) and an older one: stale
    assert.deepStrictEqual(
      apply(state, "push", presence("aaaa-1", "Busy", "A3"), presence("AAAA-1", "Busy", "A3"), presence("aaaa-1", "Away", "A2")),
      { changes: ["aaaa-1 Busy push"], stale: ["A3", "A2"] }
    )
    // a read of the same presence changes nothing; a read older than the pushed one is dropped without being counted
    assert.deepStrictEqual(apply(state, "reconcile", presence("aaaa-1", "Busy", "A3"), presence("aaaa-1", "Away", "A2")), {
      changes: [],
      stale: []
    })
    // the same content under a newer number is remembered, so an item between the two numbers is then stale
    assert.deepStrictEqual(apply(state, "push", presence("bbbb-2", "Available", "A5"), presence("bbbb-2", "Away", "A4")), {
      changes: [],
      stale: ["A4"]
    })
  })

  it("ignores users it does not serve and forgets the presence of users who leave", () => {
    const state = new PresenceState()
    assert.deepStrictEqual(state.setUsers(["u1"]), ["u1"])
    assert.deepStrictEqual(apply(state, "push", presence("u2", "Busy", "A1")).changes, [])
    assert.deepStrictEqual(apply(state, "push", presence("U1", "Busy", "A5")).changes, ["U1 Busy push"])
    assert.deepStrictEqual(state.setUsers(["u1", "U2"]), ["U2"])
    assert.isTrue(state.has("u2"))
    state.setUsers(["u2"])
    state.setUsers(["u1", "u2"])
    // u1's A5 was forgotten when u1 left: an older number is accepted as the first presence after the return
    assert.deepStrictEqual(apply(state, "push", presence("u1", "Busy", "A2")).changes, ["u1 Busy push"])
  })
})
