/**
 * Which PBXs a sender of desired presences reads on a wake-up (src/cluster/DesiredSender.ts), over the real
 * PresenceWriter, the PBX simulator (a master and a slave) on real sockets and the state store on a real PostgreSQL:
 * a wake-up naming one PBX reads that PBX's rows only, and a put's NOTIFY that comes back after the owner woke the
 * sender at once (and the look read that far) costs no read; an owner's put of a PBX whose lease its runner holds is
 * handed to the writer without a read, unless another row of that PBX was pending unread at the put; a put's NOTIFY
 * carries its rows to the holder on another runner, which hands them over without a read too. The sender's 15 s
 * look at every PBX never comes: TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, PubSub, Queue, Redacted, Stream } from "effect"
import { TestClock } from "effect/testing"
import { DesiredWakeups, makeSender } from "../../src/cluster/DesiredSender.ts"
import { setPresence } from "../../src/domain/PbxPresence.ts"
import { PbxSimulator } from "../../src/simulators/pbx/PbxSimulator.ts"
import { notifyRowsBytes } from "../../src/state/postgres/PgDesired.ts"
import { type DesiredWakeup, StateStore, TenantId, type VersionedCommand } from "../../src/state/StateStore.ts"
import { allLoggedIn, makeUsers, password, startConnector } from "../pbx/harness.ts"
import { keyEnv, newKey, openStore, withEnv } from "../state/fixtures.ts"
import { newSchemaUrl } from "../support/postgres.ts"
import { makeRecordedWaits } from "../support/waiting.ts"
import { makeGate } from "./senderConnections.ts"

const tenant = TenantId.make("alpha")
const master = "pbx-master"
const slave = "pbx-slave"

/**
 * `owner`: the runner whose epoch puts (the sender is runner-1); `listen`: the puts' wake-ups come from the store's
 * LISTEN (only those of puts, which name a version: the leases' and the LISTEN's own are left out, so that the reads
 * counted are those of the puts).
 */
const setUp = Effect.fnUntraced(function*(options: { readonly owner?: string; readonly listen?: boolean } = {}) {
  const { recorded, until } = makeRecordedWaits()
  const { gate, layer } = makeGate(recorded, { holding: false })
  const started = gate.started
  const connector = yield* startConnector({}, { writerConnections: layer })
  const masterUsers = makeUsers("m", 2, master)
  const slaveUsers = makeUsers("s", 2, slave)
  yield* PbxSimulator.make({
    connectUrl: connector.url,
    domain: "example.com",
    pbxs: [
      { name: master, isMaster: true, password, lics: 4, appObject: "teams-presence", users: masterUsers },
      { name: slave, isMaster: false, password, lics: 4, appObject: "teams-presence", users: slaveUsers }
    ]
  })
  yield* connector.directory.ready
  yield* connector.waitStates(allLoggedIn([master, slave]))
  const url = yield* Effect.promise(newSchemaUrl)
  const real = yield* openStore(StateStore.layerPostgres({ url: Redacted.make(url), maxConnections: 4 }).pipe(Layer.provide(withEnv(keyEnv(newKey())))))
  // Every pending read, by PBX, in the order they returned.
  const reads: Array<string> = []
  const store = StateStore.of({
    ...real,
    desired: {
      ...real.desired,
      pending: (t, pbx, limit, lease, after) =>
        Effect.tap(real.desired.pending(t, pbx, limit, lease, after), () => Effect.sync(() => {
          reads.push(pbx)
          recorded()
        }))
    }
  })
  // The wake-ups are the test's to give (as the runner's LISTEN and its owner's own wake-ups give them).
  const hub = yield* PubSub.unbounded<DesiredWakeup>()
  const wakeups = DesiredWakeups.of({
    subscribe: () => PubSub.subscribe(hub),
    local: (t, pbx, put) => PubSub.publish(hub, { kind: "changed", tenant: t, pbx, ...(put === undefined ? {} : { put }) }).pipe(Effect.asVoid)
  })
  if (options.listen === true) {
    // Both LISTENs (every process's channel and runner-1's) in place before anything is put: each starts with a resync.
    const listening = yield* Queue.unbounded<void>()
    yield* Stream.merge(real.desired.wakeups, real.desired.heldWakeups("runner-1")).pipe(
      Stream.runForEach((wakeup) =>
        wakeup.kind === "resync" ? Queue.offer(listening, undefined) : wakeup.version !== undefined ? PubSub.publish(hub, wakeup) : Effect.void
      ),
      Effect.forkScoped
    )
    yield* Queue.take(listening)
    yield* Queue.take(listening)
  }
  const { epoch } = yield* store.owners.claim(tenant, options.owner ?? "runner-1")
  yield* makeSender({ tenant, store, real: connector.writer, connections: connector.connections, runner: "runner-1" }, wakeups)
  const putRows = (pbx: string, guid: string, activity: "away" | "dnd" = "away", note?: string) =>
    store.desired.put(tenant, epoch, [{ pbx, guid, command: setPresence(activity, note) }])
  const put = (pbx: string, guid: string) => putRows(pbx, guid).pipe(Effect.map((rows) => rows[0]!.version))
  const notify = (wakeup: Omit<Extract<DesiredWakeup, { kind: "changed" }>, "kind" | "tenant">) =>
    PubSub.publish(hub, { kind: "changed", tenant, ...wakeup })
  /** The writer has started `guid`'s SetPresence: the look that read it has handed it over. */
  const sent = (guid: string) => until(() => started.includes(guid))
  /** How many SetPresence of `guid` the writer has started. */
  const startedOf = (guid: string) => gate.started.filter((g) => g === guid).length
  return { until, reads, put, putRows, notify, wakeups, sent, startedOf, masterUsers, slaveUsers }
})

describe("the desired presences' sender: what a wake-up reads", () => {
  it.effect("a wake-up reads only the PBX it names, and a put's NOTIFY read already by the owner's own wake-up is skipped", () =>
    Effect.gen(function*() {
      const { masterUsers, notify, put, reads, sent, slaveUsers, until, wakeups } = yield* setUp()
      // The first look reads every PBX logged in (and takes their leases).
      yield* until(() => reads.includes(master) && reads.includes(slave))
      const mark = reads.length

      // The owner puts a master user's command and wakes its own runner's sender at once (no version: read in any case).
      const [m1, m2] = [masterUsers[0]!.guid, masterUsers[1]!.guid]
      const s1 = slaveUsers[0]!.guid
      const v1 = yield* put(master, m1)
      yield* wakeups.local(tenant, master)
      yield* sent(m1)
      // The put's NOTIFY comes back, naming the version the look read already; then a slave user's change is notified.
      yield* notify({ pbx: master, version: v1 })
      const v2 = yield* put(slave, s1)
      yield* notify({ pbx: slave, version: v2 })
      yield* sent(s1)
      // One more change of the master, woken at once: every look before it has ended once it is handed over.
      yield* put(master, m2)
      yield* wakeups.local(tenant, master)
      yield* sent(m2)

      const since = reads.slice(mark)
      assert.deepStrictEqual(since.filter((pbx) => pbx === master).length, 2, `the master read for its two changes only: ${JSON.stringify(since)}`)
      assert.deepStrictEqual(since.filter((pbx) => pbx === slave).length, 1, `the slave read for its change only: ${JSON.stringify(since)}`)
    }).pipe(Effect.scoped), 30_000)

  it.effect("an owner's put of a PBX whose lease its runner holds is handed over without a read, unless the PBX has a row pending unread", () =>
    Effect.gen(function*() {
      const { masterUsers, notify, putRows, reads, sent, slaveUsers, startedOf, until, wakeups } = yield* setUp()
      yield* until(() => reads.includes(master) && reads.includes(slave))
      const mark = reads.length
      const [m1, m2] = [masterUsers[0]!.guid, masterUsers[1]!.guid]
      const s1 = slaveUsers[0]!.guid

      // The put saw the master's lease held by this runner and nothing else pending: its rows go to the writer as they are.
      const first = yield* putRows(master, m1)
      assert.strictEqual(first[0]!.lease?.runner, "runner-1")
      assert.strictEqual(first[0]!.lease?.unread, 0)
      yield* wakeups.local(tenant, master, first)
      yield* sent(m1)
      // Its NOTIFY comes back, naming the version handed; then a slave change read as usual (every look before it ended).
      yield* notify({ pbx: master, version: first[0]!.version })
      const v2 = (yield* putRows(slave, s1))[0]!.version
      yield* notify({ pbx: slave, version: v2 })
      yield* sent(s1)
      const since = reads.slice(mark)
      assert.deepStrictEqual(since, [slave], `no read of the master for its put: ${JSON.stringify(since)}`)

      // A row of the master put whose wake-up never came, then another put: that one cannot go without the first, so
      // the master is read, and both are sent.
      const lost = yield* putRows(master, m2)
      const next = yield* putRows(master, m1, "dnd")
      assert.strictEqual(next[0]!.lease?.unread, lost[0]!.version)
      yield* wakeups.local(tenant, master, next)
      yield* sent(m2)
      yield* until(() => startedOf(m1) >= 2)
      assert.deepStrictEqual(reads.slice(mark), [slave, master], "the master read once, for the row it had not read")
    }).pipe(Effect.scoped), 30_000)

  it.effect("a put's NOTIFY brings its rows to the holder on another runner: handed over without a read, unless too large", () =>
    Effect.gen(function*() {
      // The tenant's owner is runner-0; this sender (runner-1) holds the PBXs' leases and is woken by the store's LISTEN.
      const { masterUsers, putRows, reads, sent, slaveUsers, until } = yield* setUp({ owner: "runner-0", listen: true })
      yield* until(() => reads.includes(master) && reads.includes(slave))
      const mark = reads.length
      const [m1, m2] = [masterUsers[0]!.guid, masterUsers[1]!.guid]
      const s1 = slaveUsers[0]!.guid
      const first = yield* putRows(master, m1)
      assert.deepStrictEqual(first[0]!.lease, { runner: "runner-1", epoch: first[0]!.lease!.epoch, unread: 0 })
      yield* sent(m1)
      yield* putRows(slave, s1)
      yield* sent(s1)
      assert.deepStrictEqual(reads.slice(mark), [], "no read for rows the NOTIFY carried")

      // Rows too large for the NOTIFY's payload (a long note): it names the version only, and the master is read.
      yield* putRows(master, m2, "dnd", "x".repeat(notifyRowsBytes))
      yield* sent(m2)
      assert.deepStrictEqual(reads.slice(mark), [master], "the master read once, for the put its NOTIFY could not carry")
    }), 30_000)

  it.effect("an own put's NOTIFY that comes before its answer costs no read; without the answer, the master is read after 1 s", () =>
    Effect.gen(function*() {
      const { masterUsers, notify, putRows, reads, sent, slaveUsers, startedOf, until, wakeups } = yield* setUp()
      yield* until(() => reads.includes(master) && reads.includes(slave))
      const mark = reads.length
      const [m1, m2] = [masterUsers[0]!.guid, masterUsers[1]!.guid]
      const [s1, s2] = [slaveUsers[0]!.guid, slaveUsers[1]!.guid]
      /** The NOTIFY of `rows`' put as PostgreSQL sends it: the owner's runner and the lease the put saw. */
      const notifyOf = (rows: ReadonlyArray<VersionedCommand>) =>
        notify({ pbx: master, version: rows[0]!.version, by: { owner: "runner-1", holder: rows[0]!.lease?.runner, lease: rows[0]!.lease?.epoch } })
      /** A slave change, notified and sent: every wake-up before it has been taken. */
      const slaveChange = Effect.fnUntraced(function*(guid: string, activity: "away" | "dnd" = "away") {
        const version = (yield* putRows(slave, guid, activity))[0]!.version
        yield* notify({ pbx: slave, version })
        yield* sent(guid)
      })

      // The NOTIFY first, taken before the answer (a slave change after it is sent), then the owner's rows.
      const first = yield* putRows(master, m1)
      yield* notifyOf(first)
      yield* slaveChange(s1)
      yield* wakeups.local(tenant, master, first)
      yield* sent(m1)
      yield* TestClock.adjust("1 second")
      yield* slaveChange(s2)
      assert.deepStrictEqual(reads.slice(mark), [slave, slave], "the master not read for its own put")

      // The answer never comes (the owner's put loop ended after the commit): the master is read after 1 s.
      const orphan = yield* putRows(master, m2)
      yield* notifyOf(orphan)
      yield* slaveChange(s1, "dnd")
      assert.strictEqual(startedOf(m2), 0, "not sent before the grace")
      yield* TestClock.adjust("1 second")
      yield* sent(m2)
      assert.deepStrictEqual(reads.slice(mark), [slave, slave, slave, master], "the master read once, after the grace")
    }).pipe(Effect.scoped), 30_000)
})
