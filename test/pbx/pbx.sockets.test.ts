import { createHash } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Redacted, SubscriptionRef } from "effect"
import { setPresence } from "../../src/domain/PbxPresence.ts"
import { loginDigest } from "../../src/pbx/socket/AppLoginDigest.ts"
import { PbxSimulator } from "../../src/simulators/pbx/PbxSimulator.ts"
import { teamsEntry } from "../support/pbxPresence.ts"
import { allLoggedIn, makeUsers, password, rawClient, startConnector } from "./harness.ts"

const threePbxs = (url: string, users: { master: number; slave: number }) => ({
  connectUrl: url,
  domain: "example.com",
  reconnectDelayMs: 100,
  pbxs: [
    { name: "pbx-master", isMaster: true, password, lics: 100, appObject: "teams-presence", users: makeUsers("m", users.master, "pbx-master") },
    { name: "pbx-slave1", isMaster: false, password, lics: 100, appObject: "teams-presence", users: makeUsers("a", users.slave, "pbx-slave1") },
    { name: "pbx-slave2", isMaster: false, password, lics: 100, appObject: "teams-presence", users: makeUsers("b", users.slave, "pbx-slave2") }
  ]
})

describe("PBX side over real sockets with the simulator", () => {
  it.live("master + 2 slaves connect; a slave's user gets its SetPresence on the slave's connection", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const sim = yield* PbxSimulator.make(threePbxs(connector.url, { master: 2, slave: 2 }))
      yield* connector.waitStates(allLoggedIn(["pbx-master", "pbx-slave1", "pbx-slave2"]))
      yield* connector.directory.ready
      const users = yield* connector.directory.snapshot
      assert.strictEqual(users.size, 6)
      const slaveUser = makeUsers("a", 1, "pbx-slave1")[0]!
      const masterUser = makeUsers("m", 1, "pbx-master")[0]!
      assert.strictEqual(users.get(slaveUser.guid)?.loc, "pbx-slave1")

      yield* connector.writer.write(slaveUser.guid, setPresence("busy", "in Teams"))
      yield* connector.writer.write(masterUser.guid, setPresence("away"))
      yield* sim.waitFor(() => teamsEntry(sim.peek.presence(slaveUser.guid))?.activity === "busy" || undefined)
      yield* sim.waitFor(() => teamsEntry(sim.peek.presence(masterUser.guid))?.activity === "away" || undefined)
      const log = yield* sim.setPresenceLog
      assert.deepStrictEqual(log.filter((r) => r.guid === slaveUser.guid).map((r) => r.pbx), ["pbx-slave1"])
      assert.deepStrictEqual(log.filter((r) => r.guid === masterUser.guid).map((r) => r.pbx), ["pbx-master"])
      assert.deepStrictEqual(sim.peek.presence(slaveUser.guid)[0], { contact: "teams:", status: "open", activity: "busy", note: "in Teams" })
      yield* connector.writer.flush
      const current = yield* connector.writer.current
      assert.strictEqual(current.get(slaveUser.guid)?.pbx, "pbx-slave1")

      const states = yield* SubscriptionRef.get(connector.connections.states)
      assert.deepStrictEqual([...states.values()].map((s) => [s.pbx, s.isMaster, s.connected, s.missingApis.length]).sort(), [
        ["pbx-master", true, true, 0],
        ["pbx-slave1", false, true, 0],
        ["pbx-slave2", false, true, 0]
      ])
      const master = (yield* connector.connections.master)
      assert.isTrue(master._tag === "Some" && master.value.isMaster)
    }).pipe(Effect.scoped))

  it.live("1,000 rapid changes for one user produce far fewer writes and end in the last state", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const sim = yield* PbxSimulator.make(threePbxs(connector.url, { master: 1, slave: 1 }))
      yield* connector.waitStates(allLoggedIn(["pbx-master", "pbx-slave1", "pbx-slave2"]))
      yield* connector.directory.ready
      const guid = makeUsers("a", 1, "pbx-slave1")[0]!.guid
      const activities = ["away", "busy", "dnd", "meeting"] as const
      for (let i = 0; i < 1000; i++) {
        yield* connector.writer.write(guid, setPresence(activities[i % 4]!, i === 999 ? "final" : `change ${i}`))
      }
      yield* sim.waitFor(() => teamsEntry(sim.peek.presence(guid))?.note === "final" || undefined)
      yield* connector.writer.flush
      const writes = sim.peek.setPresenceLog().filter((r) => r.guid === guid)
      assert.isBelow(writes.length, 100, `${writes.length} writes for 1000 changes`)
      assert.deepStrictEqual(teamsEntry(sim.peek.presence(guid)), { contact: "teams:", status: "open", activity: "meeting", note: "final" })
      assert.strictEqual(writes.at(-1)?.note, "final")
    }).pipe(Effect.scoped))

  it.live("a PBX dropped mid-burst ends, after reconnect, with every user's final state", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const sim = yield* PbxSimulator.make(threePbxs(connector.url, { master: 20, slave: 20 }))
      yield* connector.waitStates(allLoggedIn(["pbx-master", "pbx-slave1", "pbx-slave2"]))
      yield* connector.directory.ready
      const users = [...makeUsers("m", 20, "pbx-master"), ...makeUsers("a", 20, "pbx-slave1"), ...makeUsers("b", 20, "pbx-slave2")]
      const rounds = 10
      for (let round = 0; round < rounds; round++) {
        if (round === 4) {
          yield* sim.drop("pbx-slave1")
          yield* sim.drop("pbx-master")
        }
        for (const user of users) {
          yield* connector.writer.write(user.guid, setPresence(round % 2 === 0 ? "busy" : "away", `round ${round}`))
        }
        // Each round goes out (or is held for a PBX that is away) before the next one replaces it.
        yield* connector.writer.flush
      }
      const final = `round ${rounds - 1}`
      yield* sim.waitFor(() => users.every((user) => teamsEntry(sim.peek.presence(user.guid))?.note === final) || undefined, 15_000).pipe(
        Effect.tapError(() => Effect.sync(() => {
          console.log("users not at their final state", users.filter((user) => teamsEntry(sim.peek.presence(user.guid))?.note !== final).map((u) => [u.guid, teamsEntry(sim.peek.presence(u.guid))?.note]))
          console.log("simulator status", JSON.stringify(sim.peek.status()))
          console.log("connector log", connector.logs.slice(-40).join("\n"))
        }))
      )
      const status = yield* sim.status
      assert.isAtLeast(status.find((s) => s.name === "pbx-slave1")!.logins, 2)
      const lost = users.filter((user) => teamsEntry(sim.peek.presence(user.guid))?.note !== final)
      assert.strictEqual(lost.length, 0)
      // Each slave user's writes went to its own PBX, before and after the reconnect.
      const misrouted = sim.peek.setPresenceLog().filter((r) => r.accepted && r.guid?.startsWith("a") && r.pbx !== "pbx-slave1")
      assert.strictEqual(misrouted.length, 0)
    }).pipe(Effect.scoped))

  it.live("garbage frames are logged and leave the connection up", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const sim = yield* PbxSimulator.make(threePbxs(connector.url, { master: 1, slave: 1 }))
      yield* connector.waitStates(allLoggedIn(["pbx-master", "pbx-slave1", "pbx-slave2"]))
      yield* connector.directory.ready
      for (const frame of ["not json", "{\"mt\":42}", "[]", "{\"mt\":\"Bogus\"}", "{\"mt\":\"PbxInfo\",\"apis\":\"nope\"}"]) {
        yield* sim.sendRaw("pbx-master", frame)
      }
      const guid = makeUsers("m", 1, "pbx-master")[0]!.guid
      yield* connector.writer.write(guid, setPresence("dnd"))
      yield* sim.waitFor(() => teamsEntry(sim.peek.presence(guid))?.activity === "dnd" || undefined)
      const master = (yield* sim.status).find((s) => s.name === "pbx-master")!
      assert.strictEqual(master.logins, 1)
      assert.isTrue(master.connected)
      // The frames are logged as the connection's message loop reaches them, which may come after the write's round
      // trip (the write leaves in the task that made it): looked for for up to a second.
      const expected = ["not JSON", "without a valid \"mt\"", "unexpected Bogus", "malformed PbxInfo"]
      const missing = () => expected.filter((text) => !connector.logs.some((line) => line.includes(text)))
      for (let i = 0; i < 100 && missing().length > 0; i++) yield* Effect.sleep(10)
      assert.deepStrictEqual(missing(), [])
    }).pipe(Effect.scoped))

  it.live("a connection that does not log in in time is closed", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector({ loginTimeoutMs: 200 })
      const client = yield* rawClient(connector.url)
      client.socket.send(JSON.stringify({ mt: "AppChallenge" }))
      yield* client.next((frame) => frame.includes("AppChallengeResult"))
      yield* Deferred.await(client.closed)
      assert.isTrue(connector.logs.some((line) => line.includes("no AppLogin within 200 ms")))
    }).pipe(Effect.scoped))

  it.live("a wrong App object password gets ok:false, a close and a log line without the password", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const client = yield* rawClient(connector.url)
      client.socket.send(JSON.stringify({ mt: "AppChallenge" }))
      const challenge = (JSON.parse(yield* client.next((frame) => frame.includes("AppChallengeResult"))) as { challenge: string }).challenge
      assert.match(challenge, /^[0-9a-f]{16}$/)
      const info = "{\"appobj\":\"teams-presence\",\"pbx\":\"pbx-master\",\"lics\":5,\"apps\":[]}"
      const fields = { app: "pbx", domain: "example.com", sip: "teams-presence", guid: createHash("md5").update("x").digest("hex"), dn: "teams-presence" }
      const digest = loginDigest({ ...fields, infoText: info }, challenge, Redacted.make("not-the-password"))
      client.socket.send(`{"mt":"AppLogin","app":"pbx","domain":"example.com","sip":"teams-presence","guid":"${fields.guid}","dn":"teams-presence","digest":"${digest}","info":${info}}`)
      const result = yield* client.next((frame) => frame.includes("AppLoginResult"))
      assert.deepStrictEqual(JSON.parse(result), { mt: "AppLoginResult", ok: false })
      yield* Deferred.await(client.closed)
      assert.isTrue(connector.logs.some((line) => line.includes("wrong App object password for PBX pbx-master")))
      assert.isFalse(connector.logs.some((line) => line.includes(password) || line.includes("not-the-password")))
      const states = yield* SubscriptionRef.get(connector.connections.states)
      assert.match(states.get("pbx-master")?.lastError?.message ?? "", /wrong App object password/)
      assert.isFalse(states.get("pbx-master")?.loggedIn ?? false)
    }).pipe(Effect.scoped))
})
