import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Option, PubSub, Stream, SubscriptionRef } from "effect"
import { clearPresence, setPresence } from "../../src/domain/PbxPresence.ts"
import { PbxSimulator } from "../../src/simulators/pbx/PbxSimulator.ts"
import { teamsEntry } from "../support/pbxPresence.ts"
import { subscribedNow } from "../support/streams.ts"
import { allLoggedIn, makeUsers, password, startConnector } from "./harness.ts"

const oneMaster = (url: string, extra: { apis?: ReadonlyArray<string>; controlPort?: number } = {}) => ({
  connectUrl: url,
  domain: "example.com",
  reconnectDelayMs: 100,
  ...(extra.controlPort !== undefined ? { controlPort: extra.controlPort } : {}),
  pbxs: [{
    name: "pbx-master",
    isMaster: true,
    password,
    lics: 5,
    appObject: "teams-presence",
    ...(extra.apis !== undefined ? { apis: extra.apis } : {}),
    users: makeUsers("m", 3, "pbx-master")
  }]
})

describe("PBX side behaviour", () => {
  it.live("table edits reach the directory as live Add / Update / Del", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const sim = yield* PbxSimulator.make(oneMaster(connector.url))
      yield* connector.directory.ready
      const changes = Stream.take(yield* subscribedNow(connector.directory.changes), 3).pipe(Stream.runCollect, Effect.forkScoped)
      const [added] = makeUsers("n", 1, "pbx-master")
      yield* sim.upsertUser(added!)
      yield* sim.upsertUser({ ...added!, cn: "Renamed" })
      yield* sim.removeUser(makeUsers("m", 1, "pbx-master")[0]!.guid)
      const seen = yield* Fiber.join(yield* changes)
      assert.deepStrictEqual(seen.map((change) => change._tag), ["Added", "Updated", "Removed"])
      const snapshot = yield* connector.directory.snapshot
      assert.strictEqual(snapshot.get(added!.guid)?.cn, "Renamed")
      assert.deepStrictEqual(snapshot.get(added!.guid)?.emails, ["n0@example.com"])
      assert.strictEqual(snapshot.size, 3)
    }).pipe(Effect.scoped))

  it.live("a refused SetPresence is logged and retried until the PBX accepts it; Clear writes an empty activity", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const sim = yield* PbxSimulator.make(oneMaster(connector.url))
      yield* connector.directory.ready
      const guid = makeUsers("m", 1, "pbx-master")[0]!.guid
      yield* sim.setPresenceBehaviour("pbx-master", { refuse: "temporarily unavailable" })
      yield* connector.writer.write(guid, setPresence("lunch"))
      yield* sim.waitFor(() => sim.peek.setPresenceLog().filter((r) => !r.accepted).length >= 2 || undefined)
      yield* sim.setPresenceBehaviour("pbx-master", { refuse: undefined })
      yield* sim.waitFor(() => teamsEntry(sim.peek.presence(guid))?.activity === "lunch" || undefined)
      assert.isTrue(connector.logs.some((line) => line.includes("temporarily unavailable")))
      yield* connector.writer.write(guid, clearPresence)
      yield* sim.waitFor(() => teamsEntry(sim.peek.presence(guid))?.activity === "" || undefined)
      assert.deepStrictEqual(teamsEntry(sim.peek.presence(guid)), { contact: "teams:", status: "open", activity: "", note: "" })
      yield* connector.writer.flush
      const current = yield* connector.writer.current
      assert.strictEqual(current.get(guid)?.command._tag, "Clear")
    }).pipe(Effect.scoped))

  it.live("a SetPresence the PBX does not answer in time fails as a timeout, is logged and retried", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector({ requestTimeoutMs: 300 })
      const sim = yield* PbxSimulator.make(oneMaster(connector.url))
      yield* connector.directory.ready
      const guid = makeUsers("m", 1, "pbx-master")[0]!.guid
      // The PBX answers after 1.5 s: later than the connector waits, so the first attempt times out.
      yield* sim.setPresenceBehaviour("pbx-master", { delayMs: 1_500 })
      const started = Date.now()
      yield* connector.writer.write(guid, setPresence("busy"))
      yield* connector.logged((line) => line.includes("did not answer SetPresence within 300 ms")).pipe(Effect.timeout("5 seconds"))
      const timedOutAfter = Date.now() - started
      assert.isAtLeast(timedOutAfter, 300)
      assert.isBelow(timedOutAfter, 1_500)
      yield* sim.setPresenceBehaviour("pbx-master", { delayMs: 0 })
      yield* connector.writer.flush
      const current = yield* connector.writer.current
      assert.deepStrictEqual(current.get(guid)?.command, setPresence("busy"))
      assert.strictEqual(teamsEntry(sim.peek.presence(guid))?.activity, "busy")
    }).pipe(Effect.scoped))

  it.live("missing API checkmarks are reported with the fix", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      yield* PbxSimulator.make(oneMaster(connector.url, { apis: ["PbxApi"] }))
      yield* Stream.runHead(
        Stream.filter(SubscriptionRef.changes(connector.connections.states), (s) => (s.get("pbx-master")?.missingApis.length ?? 0) > 0)
      )
      const state = (yield* SubscriptionRef.get(connector.connections.states)).get("pbx-master")!
      assert.deepStrictEqual(state.missingApis, ["PbxTableUsers"])
      assert.match(state.lastError?.fix ?? "", /checkmark TableUsers \(PbxTableUsers\)/)
      assert.isTrue(connector.logs.some((line) => line.includes("set the checkmark TableUsers (PbxTableUsers)")))
    }).pipe(Effect.scoped))

  it.live("SubscribePresence delivers PresenceState, then PresenceUpdate with the presence list, newest first", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const sim = yield* PbxSimulator.make(oneMaster(connector.url))
      yield* connector.waitStates(allLoggedIn(["pbx-master"]))
      const connection = Option.getOrThrow(yield* connector.connections.master)
      const updates = yield* PubSub.subscribe(connection.indications)
      yield* connection.request({ api: "PbxApi", mt: "SubscribePresence", sip: "m0" })
      const state = yield* PubSub.take(updates)
      assert.strictEqual(state.envelope.mt, "PresenceState")
      assert.strictEqual((state.message as { up: boolean }).up, true)
      const first = yield* PubSub.take(updates)
      assert.strictEqual(first.envelope.mt, "PresenceUpdate")
      yield* connector.writer.write(makeUsers("m", 1, "pbx-master")[0]!.guid, setPresence("vacation", "back Monday"))
      const second = yield* PubSub.take(updates)
      assert.deepStrictEqual((second.message as { presence: unknown }).presence, [
        { contact: "teams:", status: "open", activity: "vacation", note: "back Monday" }
      ])
      void sim
    }).pipe(Effect.scoped))

  it.live("the HTTP control API edits users, reads presence and drops connections", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const sim = yield* PbxSimulator.make(oneMaster(connector.url, { controlPort: 0 }))
      yield* connector.directory.ready
      const base = sim.controlUrl!
      const call = (method: string, path: string, body?: unknown) =>
        Effect.promise(() =>
          fetch(`${base}${path}`, { method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) }).then(async (r) => ({
            status: r.status,
            json: (await r.json()) as unknown
          }))
        )
      const put = yield* call("PUT", "/users", { user: { guid: "c".repeat(32), h323: "carol", cn: "Carol" } })
      assert.strictEqual(put.status, 200)
      const invalid = yield* call("PUT", "/users", { user: { h323: "no guid" } })
      assert.strictEqual(invalid.status, 400)
      yield* connector.writer.write("c".repeat(32), setPresence("busy"))
      yield* sim.waitFor(() => teamsEntry(sim.peek.presence("c".repeat(32))) ?? undefined)
      const presence = yield* call("GET", `/users/${"c".repeat(32)}/presence`)
      assert.deepStrictEqual(presence.json, [{ contact: "teams:", status: "open", activity: "busy", note: "" }])
      assert.strictEqual((yield* call("POST", "/pbxs/nope/drop", {})).status, 404)
      assert.strictEqual((yield* call("POST", "/pbxs/pbx-master/drop", {})).status, 200)
      yield* sim.waitFor(() => sim.peek.status()[0]!.logins >= 2 || undefined)
      const status = yield* call("GET", "/pbxs")
      assert.strictEqual((status.json as Array<{ loggedIn: boolean }>)[0]!.loggedIn, true)
    }).pipe(Effect.scoped))
})
