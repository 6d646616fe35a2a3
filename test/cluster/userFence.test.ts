/**
 * One writer per PBX user across PBXs (docs/scaling.md, "One writer per user"): two runners' PBX sides (the sender of
 * DesiredPresence.ts over the real writer, assembled as PbxSide.ts assembles them) on one real PostgreSQL, the PBX
 * simulator's master reaching side 1 and its slave side 2. A user's command is keyed to the master (as the owner keys
 * it while the user's slave is logged in nowhere), then to the slave with a newer state (the owner's re-keying): while
 * side 1's writer still holds the older state — in retry after the master refused it, or to be sent again when the
 * master logs in again — side 1 never writes it after side 2 wrote the newer one.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { setPresence } from "../../src/domain/PbxPresence.ts"
import { alpha, master, slave, twoSideScene } from "./twoSides.ts"

const setUp = Effect.fnUntraced(function*() {
  const { store, side1, side2, sim, log, written, until, masterUsers, slaveUsers } = yield* twoSideScene(3)
  const { epoch } = yield* store.owners.claim(alpha, "runner-owner")
  /** The owner's put: `guid`'s command keyed to `pbx`. */
  const put = (pbx: string, guid: string, activity: "away" | "busy") =>
    store.desired.put(alpha, epoch, [{ pbx, guid, command: setPresence(activity) }])
  /** A write of the older state on the master after the newer one was written on the slave. */
  const stale = (guid: string) => {
    const newer = log().findIndex(written(slave, guid, "busy"))
    return newer >= 0 && log().slice(newer + 1).some(written(master, guid, "away"))
  }
  /** Side 1 found (by the store) that `guid`'s command is another PBX's now, and forgot it. */
  const dropped = (guid: string) => side1.logs.some((line) => line.includes(guid) && line.includes("another PBX's holder"))
  /** Waits until side 1 writes the older state after the newer one, or drops it: whichever comes first. */
  const staleOrDropped = (guid: string) =>
    Effect.raceFirst(
      sim.waitFor(() => (stale(guid) ? true : undefined), 15_000),
      until(() => dropped(guid)).pipe(Effect.timeout("15 seconds"))
    )
  return { sim, side1, side2, put, log, written, stale, staleOrDropped, masterUsers, slaveUsers }
})

describe("one writer per PBX user across PBXs", () => {
  it.live("a retry of the older state on the former PBX is not sent once the user's command moved to another PBX", () =>
    Effect.gen(function*() {
      const { log, put, side1, sim, slaveUsers, stale, staleOrDropped, written } = yield* setUp()
      const user = slaveUsers[0]!.guid
      // The master refuses: side 1's writer holds the older state and retries it with backoff.
      yield* sim.setPresenceBehaviour(master, { refuse: "temporarily unavailable" })
      yield* put(master, user, "away")
      yield* sim.waitFor(() => (log().some((r) => r.pbx === master && r.guid === user && !r.accepted) ? true : undefined))
      // The owner keys the user to the slave, with a newer state; side 2 writes it there.
      yield* put(slave, user, "busy")
      yield* sim.waitFor(() => (log().some(written(slave, user, "busy")) ? true : undefined))
      // The master takes writes again: a retry of the older state would now overwrite the newer one.
      yield* sim.setPresenceBehaviour(master, { refuse: undefined })
      yield* staleOrDropped(user)
      assert.isFalse(stale(user), `side 1 wrote the older state after the newer one: ${JSON.stringify(log().filter((r) => r.guid === user))}`)
      assert.isFalse((yield* side1.writer.desired).has(user), "side 1's writer no longer holds the user")
      assert.strictEqual(sim.peek.presence(user)[0]?.activity, "busy")
    }).pipe(Effect.scoped), 60_000)

  it.live("the former PBX logging in again does not get the older state, and its own users' states are sent again", () =>
    Effect.gen(function*() {
      const { log, masterUsers, put, side1, sim, slaveUsers, stale, staleOrDropped, written } = yield* setUp()
      const user = slaveUsers[1]!.guid
      const own = masterUsers[0]!.guid
      yield* put(master, user, "away")
      yield* put(master, own, "away")
      yield* sim.waitFor(() => (log().some(written(master, user, "away")) && log().some(written(master, own, "away")) ? true : undefined))
      yield* put(slave, user, "busy")
      yield* sim.waitFor(() => (log().some(written(slave, user, "busy")) ? true : undefined))
      // The master's socket drops and it logs in again on side 1: its writer sends what belongs on it again.
      yield* sim.drop(master)
      yield* staleOrDropped(user)
      assert.isFalse(stale(user), `side 1 wrote the older state after the newer one: ${JSON.stringify(log().filter((r) => r.guid === user))}`)
      // The user still on the master gets its state again on the new connection (the re-send on a login is kept).
      yield* sim.waitFor(() => (log().filter(written(master, own, "away")).length >= 2 ? true : undefined))
      assert.isFalse(stale(user))
      assert.isFalse((yield* side1.writer.desired).has(user), "side 1's writer no longer holds the user")
      assert.strictEqual(sim.peek.presence(user)[0]?.activity, "busy")
    }).pipe(Effect.scoped), 60_000)
})
