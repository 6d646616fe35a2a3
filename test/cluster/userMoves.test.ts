/**
 * A user moved to another PBX in the user table, with no Teams change (docs/scaling.md, "Routing"): the tenant's owner
 * (DesiredPresence.ts over the store's user table, as in mode `any`) keys the user's current command again to the new
 * `loc` PBX, whose socket holder sends it; the former PBX's holder forgets it. Two runners' PBX sides (as PbxSide.ts
 * assembles them) on one real PostgreSQL, the PBX simulator's master reaching side 1 and its slave side 2; the move is
 * an edit of the simulator's user table, replicated to side 1 and published to the store from there.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Deferred, Effect, Layer, Logger, Option } from "effect"
import { DesiredWakeups, desiredPresenceWriter } from "../../src/cluster/DesiredPresence.ts"
import { storeDirectory } from "../../src/cluster/StoreDirectory.ts"
import { setPresence } from "../../src/domain/PbxPresence.ts"
import { PbxDirectory } from "../../src/pbx/directory/PbxDirectory.ts"
import { pbxServices } from "../../src/pbx/PbxLayer.ts"
import { PbxSettings } from "../../src/pbx/PbxSettings.ts"
import { PresenceWriter } from "../../src/pbx/writer/PresenceWriter.ts"
import { type SimUser } from "../../src/simulators/pbx/PbxSimulator.ts"
import { StateStore, type StateStoreError } from "../../src/state/StateStore.ts"
import { tenant } from "../state/fixtures.ts"
import { alpha, master, settings, slave, twoSideScene } from "./twoSides.ts"

/**
 * The tenant's owner in mode `any`: its connector's PBX services hold no socket and read the user table from the
 * store; its PresenceWriter puts the desired commands, keyed by the PBXs logged in on the two sides.
 */
const startOwner = Effect.fnUntraced(function*(
  services: Context.Context<StateStore | DesiredWakeups>,
  connected: Effect.Effect<ReadonlySet<string>>
) {
  const store = Context.get(services, StateStore)
  const owner = yield* store.owners.claim(alpha, "runner-owner")
  const fenced = yield* Deferred.make<StateStoreError>()
  const pbx = yield* Layer.build(pbxServices(storeDirectory(alpha)).pipe(Layer.provideMerge(PbxSettings.layer(settings)))).pipe(
    Effect.provideContext(services)
  )
  const logs: Array<string> = []
  const capture = Logger.make(({ message }) => void logs.push(Array.isArray(message) ? message.map(String).join(" ") : String(message)))
  const writer = yield* Layer.build(desiredPresenceWriter(alpha, owner, fenced, { connected })).pipe(
    Effect.provideContext(Context.merge(services, pbx)),
    Effect.provide(Logger.layer([capture], { mergeWithExisting: true }))
  )
  return { writer: Context.get(writer, PresenceWriter), directory: Context.get(pbx, PbxDirectory), logs }
})

const setUp = Effect.fnUntraced(function*() {
  const { store, services, side1, side2, sim, log, written, until, masterUsers, slaveUsers } = yield* twoSideScene(2)
  const connected = Effect.map(Effect.all([side1.loggedIn, side2.loggedIn]), ([one, two]): ReadonlySet<string> => new Set([...one, ...two]))
  const owner = yield* startOwner(services, connected)
  // The owner's table read from the store first (what the planner waits for), so each command is keyed by the user's loc.
  yield* owner.directory.ready
  /** The owner's user table says `guid` is at `pbx` (read from the store). */
  const ownerSees = (guid: string, pbx: string) =>
    Effect.gen(function*() {
      yield* owner.directory.ready
      const user = yield* owner.directory.get(guid)
      return Option.isSome(user) && user.value.loc === pbx
    })
  /** The user table's `loc` of `user` changed in the PBX (the master replicates it to side 1, which publishes it). */
  const move = (user: SimUser, to: string) => sim.upsertUser({ ...user, loc: to })
  return { sim, store, side1, side2, owner, log, written, ownerSees, move, until, masterUsers, slaveUsers }
})

describe("a user moved to another PBX in the user table", () => {
  it.live("master → slave with no Teams change: the owner keys the current command to the slave, whose holder sends it; the master's holder forgets it", () =>
    Effect.gen(function*() {
      const { log, masterUsers, move, owner, ownerSees, side1, sim, store, until, written } = yield* setUp()
      const user = masterUsers[0]!
      yield* owner.writer.write(user.guid, setPresence("busy"))
      yield* sim.waitFor(() => (log().some(written(master, user.guid, "busy")) ? true : undefined))
      assert.isTrue(yield* ownerSees(user.guid, master), "the owner's table had the user on the master before the move")

      const movedAt = yield* Clock.currentTimeMillis
      yield* move(user, slave)
      // No new write from Teams: the owner's re-keying alone brings the state to the slave.
      yield* sim.waitFor(() => (log().some(written(slave, user.guid, "busy")) ? true : undefined), 10_000)
      const took = (yield* Clock.currentTimeMillis) - movedAt
      assert.isBelow(took, 10_000)
      const [row] = yield* store.desired.latest(alpha, [user.guid])
      assert.strictEqual(row?.pbx, slave, "the user's row is keyed to the slave")
      assert.deepStrictEqual(row?.command, setPresence("busy"))

      // The master's holder still holds the command it wrote there; the master logging in again makes its writer send
      // what belongs on it, and the fence finds the row keyed to the slave: forgotten, not written on the master again.
      const onMasterBefore = log().filter(written(master, user.guid, "busy")).length
      yield* sim.drop(master)
      yield* until(() => side1.logs.some((line) => line.includes(user.guid) && line.includes("another PBX's holder"))).pipe(
        Effect.timeoutOrElse({ duration: "15 seconds", orElse: () => Effect.fail(new Error(`side 1 never forgot the moved user: ${side1.logs.slice(-5).join(" | ")}`)) })
      )
      assert.strictEqual(log().filter(written(master, user.guid, "busy")).length, onMasterBefore, "no write of the moved user on the master again")
      assert.isFalse((yield* side1.writer.desired).has(user.guid), "side 1's writer no longer holds the user")
      // As in one process, the PBX the user left is not cleared: no empty presence was written there.
      assert.isFalse(log().some((record) => record.pbx === master && record.guid === user.guid && record.activity === ""))
      yield* Effect.logInfo(`moved user's presence at the slave ${took} ms after the move`)
    }).pipe(Effect.scoped), 60_000)

  it.live("slave → master, two users in one table change: one put keys both current commands to the master, whose holder sends them", () =>
    Effect.gen(function*() {
      const { log, move, owner, ownerSees, sim, slaveUsers, store, written } = yield* setUp()
      const [one, two] = [slaveUsers[0]!, slaveUsers[1]!]
      yield* owner.writer.writeAll([{ guid: one.guid, command: setPresence("away") }, { guid: two.guid, command: setPresence("dnd") }])
      yield* sim.waitFor(() => (log().some(written(slave, one.guid, "away")) && log().some(written(slave, two.guid, "dnd")) ? true : undefined))
      assert.isTrue(yield* ownerSees(one.guid, slave), "the owner's table had the users on the slave before the move")

      // Both edits within the master's side's 300 ms publish debounce: one published table, one batch of edits.
      yield* move(one, master)
      yield* move(two, master)
      yield* sim.waitFor(() => (log().some(written(master, one.guid, "away")) && log().some(written(master, two.guid, "dnd")) ? true : undefined), 10_000)
      const rows = yield* store.desired.latest(alpha, [one.guid, two.guid])
      assert.deepStrictEqual(rows.map((row) => row.pbx), [master, master], "both users' rows are keyed to the master")
      const rekeyed = owner.logs.filter((line) => line.includes("keyed again after the user table moved them"))
      assert.deepStrictEqual(rekeyed, ["cluster: 2 users' PBX commands keyed again after the user table moved them to another PBX"])
    }).pipe(Effect.scoped), 60_000)
})
