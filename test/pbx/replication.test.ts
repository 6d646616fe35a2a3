/**
 * The user table as a read-only consumer (docs/protocol-notes.md, "the user table"): ReplicateStart asks for no
 * right to add, delete or update, and for people only; objects that are not people never enter the directory, even
 * from a PBX that sends them anyway and even when they carry an e-mail address.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Option, Stream } from "effect"
import { replicationWindow } from "../../src/pbx/directory/ReplicationLoad.ts"
import { PbxSimulator, type SimUser } from "../../src/simulators/pbx/PbxSimulator.ts"
import { makeUsers, password, startConnector } from "./harness.ts"

const people = makeUsers("p", 3, "pbx-master")
const executive: SimUser = { guid: "exec".padEnd(32, "0"), h323: "boss", cn: "The Boss", emails: ["boss@example.com"], pseudo: "executive", apps: ["teams-presence"] }
/** Not people, each with the e-mail address of a person: matching them would write a person's presence to a queue. */
const objects: ReadonlyArray<SimUser> = [
  { guid: "queue".padEnd(32, "0"), h323: "sales", cn: "Sales", emails: ["p0@example.com"], pseudo: "waiting", apps: ["teams-presence"] },
  { guid: "trunk".padEnd(32, "0"), h323: "trunk", cn: "Trunk", emails: ["p1@example.com"], pseudo: "trunk" },
  { guid: "board".padEnd(32, "0"), h323: "conf", cn: "Conference", emails: ["boss@example.com"], pseudo: "bc_conf" }
]

const system = (url: string) => ({
  connectUrl: url,
  domain: "example.com",
  reconnectDelayMs: 100,
  pbxs: [{ name: "pbx-master", isMaster: true, password, lics: 0, appObject: "teams-presence", users: [...people, executive, ...objects] }]
})

describe("user table replication", () => {
  it.live("ReplicateStart is read-only and asks for users and executives with their pseudo column", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const sim = yield* PbxSimulator.make(system(connector.url))
      yield* connector.directory.ready
      const request = sim.peek.status()[0]!.replication!
      assert.strictEqual(request.add, false)
      assert.strictEqual(request.del, false)
      assert.deepStrictEqual(request.pseudo, ["", "executive"])
      assert.include(request.columns, "pseudo")
      assert.include(request.columns, "apps")
      assert.notInclude(request.columns, "pwd")
      const snapshot = yield* connector.directory.snapshot
      assert.deepStrictEqual([...snapshot.keys()].sort(), [...people, executive].map((u) => u.guid).sort())
    }).pipe(Effect.scoped))

  it.live("a PBX that sends every object anyway: queues, trunks and boards are left out, at load and live", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const sim = yield* PbxSimulator.make(system(connector.url))
      yield* sim.setReplicateAllObjects("pbx-master", true)
      yield* sim.drop("pbx-master")
      yield* connector.logged((line) => line.includes("objects that are not users, left out: 1 waiting, 1 trunk, 1 bc_conf"))
      const loaded = yield* connector.directory.snapshot
      assert.deepStrictEqual([...loaded.keys()].sort(), [...people, executive].map((u) => u.guid).sort())

      const subscribed = yield* Deferred.make<void>()
      const changes = yield* connector.directory.changes.pipe(
        Stream.onStart(Deferred.succeed(subscribed, undefined)),
        Stream.take(2),
        Stream.runCollect,
        Effect.forkScoped
      )
      yield* Deferred.await(subscribed)
      // A new queue never arrives; a person turned into a queue leaves; a new person arrives.
      yield* sim.upsertUser({ guid: "queue2".padEnd(32, "0"), h323: "q2", cn: "Queue 2", emails: ["p2@example.com"], pseudo: "waiting" })
      yield* sim.upsertUser({ ...people[2]!, pseudo: "waiting" })
      const [newcomer] = makeUsers("n", 1, "pbx-master")
      yield* sim.upsertUser(newcomer!)
      const seen = yield* Fiber.join(changes)
      assert.deepStrictEqual(seen.map((change) => [change._tag, "user" in change ? change.user.guid : ""]), [
        ["Removed", people[2]!.guid],
        ["Added", newcomer!.guid]
      ])
      const after = yield* connector.directory.snapshot
      assert.isFalse([...after.values()].some((user) => user.h323 === "q2" || user.h323 === "sales"))
    }).pipe(Effect.scoped))
})

describe("user table replication: speed and recovery", () => {
  const many = makeUsers("m", 500, "pbx-master")
  const large = (url: string) => ({ ...system(url), pbxs: [{ ...system(url).pbxs[0]!, users: many }] })

  it.live("the initial load keeps several ReplicateNext in flight and gets every row once", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const sim = yield* PbxSimulator.make(large(connector.url))
      yield* connector.directory.ready
      const snapshot = yield* connector.directory.snapshot
      assert.strictEqual(snapshot.size, many.length)
      assert.deepStrictEqual([...snapshot.keys()].sort(), many.map((user) => user.guid).sort())
      // One ReplicateNext per row, and the window's worth answered without a row at the end.
      const status = sim.peek.status()[0]!
      assert.strictEqual(status.replicateStarts, 1)
      assert.strictEqual(status.replicateNexts, many.length + replicationWindow)
    }).pipe(Effect.scoped))

  it.live("a PBX that stops answering ReplicateNext: the replication starts again on the same connection and completes", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector({ requestTimeoutMs: 400 })
      const sim = yield* PbxSimulator.make(large(connector.url))
      yield* connector.directory.ready
      yield* sim.stallReplication("pbx-master")
      yield* sim.upsertUser(makeUsers("late", 1, "pbx-master")[0]!)
      // The stall on a fresh connection's load: its first ReplicateNext is never answered.
      yield* sim.drop("pbx-master")
      const stopped = yield* connector.logged((line) => line.includes("User table replication stopped"))
      assert.include(stopped, "did not answer ReplicateNext within 400 ms")
      assert.include(stopped, "starting it again in 1s with one ReplicateNext at a time")
      yield* connector.logged((line) => line.includes(`user table loaded, ${many.length + 1} users`))
      const status = sim.peek.status()[0]!
      assert.strictEqual(status.logins, 2, "the same connection, not a reconnect")
      assert.strictEqual(status.replicateStarts, 3)
      assert.strictEqual(status.replicateNextsUnanswered, 1)
      // First connection: rows + window. Stalled load: every row plus the window (one of them never answered). Restarted
      // load, one at a time: rows + 1.
      const rows = many.length + 1
      assert.strictEqual(status.replicateNexts, many.length + replicationWindow + (rows + replicationWindow) + (rows + 1))
      const snapshot = yield* connector.directory.snapshot
      assert.strictEqual(snapshot.size, many.length + 1)
      // Live edits follow the restarted replication.
      const subscribed = yield* Deferred.make<void>()
      const next = yield* connector.directory.changes.pipe(
        Stream.onStart(Deferred.succeed(subscribed, undefined)),
        Stream.runHead,
        Effect.forkScoped
      )
      yield* Deferred.await(subscribed)
      const [newcomer] = makeUsers("n", 1, "pbx-master")
      yield* sim.upsertUser(newcomer!)
      const change = yield* Fiber.join(next)
      assert.deepStrictEqual(change.pipe(Option.map((c) => [c._tag, "user" in c ? c.user.guid : ""])), Option.some(["Added", newcomer!.guid]))
    }).pipe(Effect.scoped))
})
