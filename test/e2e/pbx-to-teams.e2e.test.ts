/**
 * PBX → Teams end to end over real sockets: PBX simulator (master + slave) → connector → Graph simulator. A call placed
 * on the PBX makes the user Busy/InACall in Teams within a second through the connector's presence session, and its
 * end clears the session; a status the user picked by hand in Teams wins; and nothing loops — the PBX never receives
 * an on-the-phone or busy that came from its own call, and after the call both sides show what they showed before.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { DemoHandle } from "../../src/demo/Demo.ts"
import { until } from "../support/waiting.ts"
import { startTestDemo, statusOf } from "../support/demo.ts"

const password = "e2e-admin-password"
const clientId = "66666666-7777-8888-9999-000000000000"

const status = (demo: DemoHandle) => statusOf(demo, password)

const start = (pbxToTeams: Record<string, unknown> = {}) =>
  Effect.gen(function*() {
    const demo = yield* startTestDemo(password, { userCount: 6, pbxToTeams })
    yield* until("all lights green and every user's calls watched", Effect.map(status(demo), (s) =>
      Object.values(s.lights).every((l) => l.state === "green") && s.pbxToTeams?.light.state === "green" &&
        s.pbxToTeams.live === 6 ? s : undefined))
    return demo
  })

/** Teams user n and the PBX user carrying the same address. */
const pair = (demo: DemoHandle, n: number) =>
  Effect.gen(function*() {
    const teamsId = demo.teamsUserIds[n - 1]!
    const pbx = (yield* demo.pbx.users).find((u) => (u.emails ?? []).includes(`user${n}@contoso.com`))!
    return { teamsId, guid: pbx.guid }
  })

const teamsShows = (demo: DemoHandle, teamsId: string) => {
  const presence = demo.graph.state.getPresence(teamsId)!
  return `${presence.availability}/${presence.activity}`
}

/** The connector's own entry in the user's PBX presence list. */
const teamsEntry = (demo: DemoHandle, guid: string) => demo.pbx.peek.presence(guid).find((entry) => entry.contact === "teams:")

const writesOf = (demo: DemoHandle, guid: string, from: number) => demo.pbx.peek.setPresenceLog().slice(from).filter((r) => r.guid === guid)

describe("PBX → Teams end to end", () => {
  it.live("a PBX call shows Busy/InACall in Teams within a second, ends cleared, and nothing comes back to the PBX", () =>
    Effect.scoped(Effect.gen(function*() {
      const demo = yield* start()
      const user = yield* pair(demo, 1)
      // Before the call: the user is Available in Teams, so the PBX's teams: entry is cleared.
      yield* demo.graph.setPresence(user.teamsId, { availability: "Available", activity: "Available" })
      yield* until("the PBX shows the Teams state", Effect.sync(() => teamsEntry(demo, user.guid)?.activity === "" ? true : undefined))
      const entryBefore = teamsEntry(demo, user.guid)
      const logFrom = demo.pbx.peek.setPresenceLog().length

      const placedAt = Date.now()
      const call = yield* demo.pbx.placeCall(user.guid)
      yield* until("Teams shows the call", Effect.sync(() => teamsShows(demo, user.teamsId) === "Busy/InACall" ? true : undefined), 5_000)
      const shownAfterMs = Date.now() - placedAt
      assert.isBelow(shownAfterMs, 1_000, `Teams showed the call after ${shownAfterMs} ms`)
      const set = demo.graph.sessionLog().find((c) => c.userId === user.teamsId && c.operation === "setPresence")!
      assert.deepInclude(set, { sessionId: clientId, availability: "Busy", activity: "InACall", expirationDuration: "PT5M", status: 200 })
      const page = yield* until("the status page lists the call", Effect.map(status(demo), (s) => s.pbxToTeams?.calls.find((c) => c.teamsId === user.teamsId)))
      assert.isTrue(page.shown)

      // The change notification for Busy/InACall reaches the connector (its row shows it), and is not written back.
      yield* until("the connector saw its own session in Teams", Effect.map(status(demo), (s) =>
        s.users.find((u) => u.teamsId === user.teamsId && u.activity === "InACall")))
      yield* demo.pbx.endCall(call)
      yield* until("the session is cleared", Effect.sync(() =>
        demo.graph.sessionLog().some((c) => c.userId === user.teamsId && c.operation === "clearPresence" && c.status === 200) ? true : undefined))
      yield* until("Teams is back to the user's own state", Effect.sync(() => teamsShows(demo, user.teamsId) === "Available/Available" ? true : undefined))
      yield* until("the row shows it", Effect.map(status(demo), (s) => s.users.find((u) => u.teamsId === user.teamsId && u.activity === "Available")))

      // Nothing of the call came back: no on-the-phone and no busy on the PBX, and its entry is what it was.
      const writes = writesOf(demo, user.guid, logFrom)
      assert.deepStrictEqual(writes.filter((r) => r.activity === "on-the-phone" || r.activity === "busy"), [])
      assert.deepStrictEqual(teamsEntry(demo, user.guid), entryBefore)
      assert.deepStrictEqual(demo.graph.presenceInputs(user.teamsId)?.sessions.size, 0)
    })), 60_000)

  it.live("a status picked by hand in Teams wins over the call; the PBX keeps it", () =>
    Effect.scoped(Effect.gen(function*() {
      const demo = yield* start()
      const user = yield* pair(demo, 2)
      yield* demo.graph.setPresence(user.teamsId, { availability: "Available", activity: "Available" })
      yield* demo.graph.setPreferredPresence(user.teamsId, { availability: "DoNotDisturb", activity: "DoNotDisturb" })
      yield* until("the PBX shows dnd from Teams", Effect.sync(() => teamsEntry(demo, user.guid)?.activity === "dnd" ? true : undefined))
      const logFrom = demo.pbx.peek.setPresenceLog().length

      const call = yield* demo.pbx.placeCall(user.guid)
      yield* until("the session is set", Effect.sync(() =>
        demo.graph.sessionLog().some((c) => c.userId === user.teamsId && c.operation === "setPresence" && c.status === 200) ? true : undefined))
      assert.strictEqual(teamsShows(demo, user.teamsId), "DoNotDisturb/DoNotDisturb", "the status picked by hand wins")
      yield* demo.pbx.endCall(call)
      yield* until("the session is cleared", Effect.sync(() =>
        demo.graph.sessionLog().some((c) => c.userId === user.teamsId && c.operation === "clearPresence" && c.status === 200) ? true : undefined))
      assert.strictEqual(teamsShows(demo, user.teamsId), "DoNotDisturb/DoNotDisturb")
      assert.strictEqual(teamsEntry(demo, user.guid)?.activity, "dnd")
      assert.deepStrictEqual(writesOf(demo, user.guid, logFrom).filter((r) => r.activity === "on-the-phone" || r.activity === "busy"), [])
    })), 60_000)

  it.live("a Teams call just after the PBX call is written once the grace has passed; stopping clears every session", () =>
    Effect.scoped(Effect.gen(function*() {
      const demo = yield* start({ graceSeconds: 3 })
      const user = yield* pair(demo, 3)
      const other = yield* pair(demo, 4)
      yield* demo.graph.setPresence(user.teamsId, { availability: "Available", activity: "Available" })
      yield* until("cleared on the PBX", Effect.sync(() => teamsEntry(demo, user.guid)?.activity === "" ? true : undefined))
      const logFrom = demo.pbx.peek.setPresenceLog().length
      const call = yield* demo.pbx.placeCall(user.guid)
      yield* until("Teams shows the call", Effect.sync(() => teamsShows(demo, user.teamsId) === "Busy/InACall" ? true : undefined))
      const endedAt = Date.now()
      yield* demo.pbx.endCall(call)
      yield* until("cleared", Effect.sync(() => teamsShows(demo, user.teamsId) === "Available/Available" ? true : undefined))
      // Right after it, a real Teams call: held back as long as it might be the PBX call's echo (the grace: 3 s from
      // the end), then written.
      assert.isBelow(Date.now() - endedAt, 2_500, "the Teams call comes within the grace")
      yield* demo.graph.setPresence(user.teamsId, { availability: "Busy", activity: "InACall" })
      const written = yield* until("the Teams call on the PBX", Effect.sync(() =>
        writesOf(demo, user.guid, logFrom).find((r) => r.activity === "on-the-phone")))
      assert.isAtLeast(Date.now() - endedAt, 3_000, "written only after the grace")
      assert.strictEqual(written.contact, "teams:")

      // A call in progress when the connector stops: its session is cleared on the way out.
      yield* demo.graph.setPresence(other.teamsId, { availability: "Available", activity: "Available" })
      yield* demo.pbx.placeCall(other.guid)
      yield* until("Teams shows the other call", Effect.sync(() => teamsShows(demo, other.teamsId) === "Busy/InACall" ? true : undefined))
      yield* demo.stopConnector
      assert.strictEqual(teamsShows(demo, other.teamsId), "Available/Available")
      assert.isTrue(demo.graph.sessionLog().some((c) => c.userId === other.teamsId && c.operation === "clearPresence" && c.status === 200))
    })), 60_000)

  it.live("a separate app registration writes with its own credential and its own id as the session", () =>
    Effect.scoped(Effect.gen(function*() {
      const writerId = "99999999-8888-7777-6666-555555555555"
      const demo = yield* start({ app: { clientId: writerId, clientSecret: "writer-secret" } })
      const user = yield* pair(demo, 5)
      const call = yield* demo.pbx.placeCall(user.guid)
      yield* until("Teams shows the call", Effect.sync(() => teamsShows(demo, user.teamsId) === "Busy/InACall" ? true : undefined))
      yield* demo.pbx.endCall(call)
      yield* until("cleared", Effect.sync(() => teamsShows(demo, user.teamsId) !== "Busy/InACall" ? true : undefined))
      const writes = demo.graph.sessionLog().filter((c) => c.userId === user.teamsId)
      assert.deepStrictEqual(writes.map((c) => `${c.operation} ${c.appId} ${c.sessionId} ${c.status}`), [
        `setPresence ${writerId} ${writerId} 200`,
        `clearPresence ${writerId} ${writerId} 200`
      ])
    })), 60_000)

  it.live("a call at a slave's user is watched on the slave's connection; RCC's call states work the same way", () =>
    Effect.scoped(Effect.gen(function*() {
      const demo = yield* start({ source: "rcc" })
      const user = yield* pair(demo, 2)
      assert.strictEqual((yield* demo.pbx.users).find((u) => u.guid === user.guid)?.loc, "pbx-slave")
      const watched = demo.pbx.peek.watchLog().filter((w) => w.guid === user.guid)
      assert.isAbove(watched.length, 0)
      assert.deepStrictEqual([...new Set(watched.map((w) => `${w.pbx} ${w.mt}`))], ["pbx-slave UserInitialize"])
      const ringing = yield* demo.pbx.placeCall(user.guid, { state: "alerting" })
      // Connected calls only (the default): the ringing call sets nothing; the session comes with the answer.
      yield* until("the status page sees no call while it rings", Effect.map(status(demo), (s) =>
        s.pbxToTeams !== undefined && s.now > Date.now() - 200 && s.pbxToTeams.calls.length === 0 ? s : undefined))
      const answeredAt = Date.now()
      yield* demo.pbx.updateCall(ringing, { state: "connected" })
      yield* until("Teams shows the connected call", Effect.sync(() => teamsShows(demo, user.teamsId) === "Busy/InACall" ? true : undefined), 5_000)
      const sets = demo.graph.sessionLog().filter((c) => c.userId === user.teamsId && c.operation === "setPresence")
      assert.isAtLeast(sets[0]!.at, answeredAt, "no session before the call was answered")
      yield* demo.pbx.endCall(ringing)
      yield* until("cleared after the call", Effect.sync(() => teamsShows(demo, user.teamsId) !== "Busy/InACall" ? true : undefined), 5_000)
    })), 60_000)
})
