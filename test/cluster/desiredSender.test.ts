/**
 * The socket holder's sender of desired presences (src/cluster/DesiredSender.ts, DesiredHandover.ts) over the real
 * PresenceWriter, the PBX simulator on a real socket and the files store: a new change goes out while the previous
 * batch's SetPresence answers are still held, a look does not read again rows already handed to the writer, the
 * writer's confirmations reach the store as they come, and a PBX that logs in again gets every unconfirmed row.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Queue } from "effect"
import { setPresence } from "../../src/domain/PbxPresence.ts"
import { DesiredWakeups, makeSender } from "../../src/cluster/DesiredSender.ts"
import { PbxSimulator } from "../../src/simulators/pbx/PbxSimulator.ts"
import { type Confirmation, StateStore, TenantId } from "../../src/state/StateStore.ts"
import { allLoggedIn, makeUsers, password, startConnector } from "../pbx/harness.ts"
import { openStore, withEnv } from "../state/fixtures.ts"
import { makeTempDir } from "../support/tempDir.ts"
import { makeRecordedWaits } from "../support/waiting.ts"
import { makeGate } from "./senderConnections.ts"

const tenant = TenantId.make("alpha")
const master = "pbx-master"

/** Waits on what the test records, each for at most 10 s. */
const makeWaiters = () => {
  const waits = makeRecordedWaits()
  return { recorded: waits.recorded, until: (check: () => boolean) => waits.until(check).pipe(Effect.timeout("10 seconds")) }
}

/** The files store, with every pending read's guids and every confirmation recorded. */
const recordingStore = Effect.fnUntraced(function*(recorded: () => void) {
  const real = yield* openStore(StateStore.layerFiles(yield* makeTempDir("tpc-sender-")).pipe(Layer.provide(withEnv({}))))
  const reads: Array<ReadonlyArray<string>> = []
  const confirmations = yield* Queue.unbounded<Confirmation>()
  const store = StateStore.of({
    ...real,
    desired: {
      ...real.desired,
      pending: (t, pbx, limit, lease, after) =>
        Effect.tap(real.desired.pending(t, pbx, limit, lease, after), (rows) => Effect.sync(() => {
          reads.push(rows.map((row) => row.guid))
          recorded()
        })),
      confirm: (t, rows, lease) => Effect.tap(real.desired.confirm(t, rows, lease), () => Queue.offerAll(confirmations, rows))
    }
  })
  return { store, reads, confirmations }
})

/** Takes confirmations until every one of `guids` was confirmed in the store. */
const confirmedAll = (confirmations: Queue.Queue<Confirmation>, guids: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const missing = new Set(guids)
    while (missing.size > 0) missing.delete((yield* Queue.take(confirmations)).guid)
  })

const setUp = Effect.fnUntraced(function*() {
  const { recorded, until } = makeWaiters()
  const { gate, layer, release } = makeGate(recorded, { holding: true })
  const connector = yield* startConnector({}, { writerConnections: layer })
  const users = makeUsers("s", 4, master)
  const sim = yield* PbxSimulator.make({
    connectUrl: connector.url,
    domain: "example.com",
    pbxs: [{ name: master, isMaster: true, password, lics: 4, appObject: "teams-presence", users }]
  })
  yield* connector.directory.ready
  yield* connector.waitStates(allLoggedIn([master]))
  const { confirmations, reads, store } = yield* recordingStore(recorded)
  const wakeups = Context.get(yield* Layer.build(DesiredWakeups.layer(["runner-1"]).pipe(Layer.provide(Layer.succeed(StateStore, store)))), DesiredWakeups)
  const { epoch } = yield* store.owners.claim(tenant, "runner-1")
  yield* makeSender({ tenant, store, real: connector.writer, connections: connector.connections, runner: "runner-1" }, wakeups)
  const put = (guid: string, activity: "away" | "busy" | "lunch" | "dnd") =>
    store.desired.put(tenant, epoch, [{ pbx: master, guid, command: setPresence(activity) }])
  const started = (guid: string) => until(() => gate.started.includes(guid))
  return { until, gate, release, sim, connector, store, reads, confirmations, put, started, guids: users.map((user) => user.guid) }
})

describe("the desired presences' sender", () => {
  it.live("a new change goes out while the previous batch is unconfirmed, and rows in flight are not read again", () =>
    Effect.gen(function*() {
      const { confirmations, gate, guids, put, reads, release, started, store } = yield* setUp()
      const [u1, u2, u3] = [guids[0]!, guids[1]!, guids[2]!]
      yield* put(u1, "lunch")
      yield* started(u1)
      // u1's answer is held: the sender must not wait for it to hand u2 over.
      yield* put(u2, "away")
      yield* started(u2)
      yield* put(u3, "busy")
      yield* started(u3)
      assert.deepStrictEqual(reads.filter((read) => read.includes(u1)).length, 1, `u1 was read once: ${JSON.stringify(reads)}`)
      assert.deepStrictEqual(reads.filter((read) => read.includes(u2)).length, 1, `u2 was read once: ${JSON.stringify(reads)}`)
      assert.deepStrictEqual((yield* store.desired.pending(tenant, master)).map((row) => row.guid), [u1, u2, u3], "nothing confirmed yet")

      // The answers come: each is confirmed in the store without another look.
      yield* release
      yield* confirmedAll(confirmations, [u1, u2, u3])
      assert.deepStrictEqual(yield* store.desired.pending(tenant, master), [])
      assert.deepStrictEqual(gate.started.filter((guid) => guid === u1).length, 1, "u1 was written once")
    }).pipe(Effect.scoped), 30_000)

  it.live("a PBX that logs in again gets every row it has not confirmed, read again on its new lease", () =>
    Effect.gen(function*() {
      const { confirmations, connector, guids, put, reads, release, sim, started, store, until } = yield* setUp()
      const [u1, u2] = [guids[0]!, guids[1]!]
      yield* put(u1, "dnd")
      yield* put(u2, "busy")
      yield* started(u1)
      yield* started(u2)
      const readsBefore = reads.length
      // The socket drops with both answers held; the PBX logs in again on a new connection.
      yield* sim.drop(master)
      yield* until(() => reads.slice(readsBefore).some((read) => read.includes(u1) && read.includes(u2)))
      yield* connector.waitStates(allLoggedIn([master]))
      yield* release
      yield* confirmedAll(confirmations, [u1, u2])
      assert.deepStrictEqual(yield* store.desired.pending(tenant, master), [])
    }).pipe(Effect.scoped), 30_000)
})
