/**
 * Every way a PBX websocket ends is logged with its real cause (secrets masked) and counted in
 * connector_pbx_connection_ends_total{stage, reason}: before login and once connected.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Metric, Redacted } from "effect"
import { pbxConnectionEnds } from "../../src/domain/Metrics.ts"
import { maskSecrets } from "../../src/pbx/socket/ConnectionEnd.ts"
import { PbxSimulator } from "../../src/simulators/pbx/PbxSimulator.ts"
import { allLoggedIn, makeUsers, password, rawClient, startConnector } from "./harness.ts"

const ends = (stage: string, reason: string) =>
  Metric.value(Metric.withAttributes(pbxConnectionEnds, { stage, reason })).pipe(Effect.map((state) => Number(state.count)))

describe("PBX connection ends", () => {
  it.live("a socket that breaks before logging in: the cause (abnormal close 1006) is logged and counted", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const before = yield* ends("login", "socket_error")
      const client = yield* rawClient(connector.url)
      client.socket.send(JSON.stringify({ mt: "AppChallenge" }))
      yield* client.next((frame) => frame.includes("AppChallengeResult"))
      client.socket.terminate()
      const line = yield* connector.logged((l) => l.includes("failed before logging in"))
      assert.match(line, /^Warn.*PBX connection from .*: failed before logging in: the PBX closed the websocket \(code 1006\)/)
      assert.strictEqual((yield* ends("login", "socket_error")) - before, 1)
    }).pipe(Effect.scoped))

  it.live("a clean close before logging in is logged as information with its code and counted as closed", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const before = yield* ends("login", "closed")
      const client = yield* rawClient(connector.url)
      client.socket.close(1000, "bye")
      yield* Deferred.await(client.closed)
      const line = yield* connector.logged((l) => l.includes("closed before logging in"))
      assert.match(line, /^Info.*closed before logging in: the PBX closed the websocket \(code 1000\)/)
      assert.strictEqual((yield* ends("login", "closed")) - before, 1)
    }).pipe(Effect.scoped))

  it.live("refused and timed-out logins are counted by reason", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector({ loginTimeoutMs: 150 })
      const before = yield* ends("login", "timeout")
      const client = yield* rawClient(connector.url)
      yield* Deferred.await(client.closed)
      yield* connector.logged((l) => l.includes("no AppLogin within 150 ms"))
      assert.strictEqual((yield* ends("login", "timeout")) - before, 1)
    }).pipe(Effect.scoped))

  it.live("a PBX that drops a logged-in connection: the disconnect names the close code and is counted", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const sim = yield* PbxSimulator.make({
        connectUrl: connector.url,
        domain: "example.com",
        reconnectDelayMs: 60_000,
        pbxs: [{ name: "pbx-master", isMaster: true, password, lics: 0, appObject: "teams-presence", users: makeUsers("e", 1, "pbx-master") }]
      })
      yield* connector.waitStates(allLoggedIn(["pbx-master"]))
      const before = yield* ends("connected", "socket_error")
      yield* sim.drop("pbx-master", { reconnect: false })
      const line = yield* connector.logged((l) => l.includes("PBX pbx-master disconnected"))
      assert.include(line, "the PBX closed the websocket (code 1006)")
      yield* connector.waitStates((states) => states.get("pbx-master")?.connected === false)
      assert.strictEqual((yield* ends("connected", "socket_error")) - before, 1)
    }).pipe(Effect.scoped))

  it.live("frames quoted in a log line have password-like members masked", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const sim = yield* PbxSimulator.make({
        connectUrl: connector.url,
        domain: "example.com",
        pbxs: [{ name: "pbx-master", isMaster: true, password, lics: 0, appObject: "teams-presence", users: makeUsers("f", 1, "pbx-master") }]
      })
      yield* connector.waitStates(allLoggedIn(["pbx-master"]))
      yield* sim.sendRaw("pbx-master", JSON.stringify({ mt: "Bogus", columns: { h323: "f0", pwd: "f8c26f062fedf2ff2980b8b8" } }))
      const line = yield* connector.logged((l) => l.includes("unexpected Bogus"))
      assert.include(line, "\"pwd\":\"***\"")
      assert.notInclude(line, "f8c26f062fedf2ff2980b8b8")
    }).pipe(Effect.scoped))

  it("maskSecrets masks members and given values, and leaves the rest", () => {
    const text = "{\"mt\":\"X\",\"digest\":\"abc\\\"def\",\"Password\":\"p\",\"h323\":\"user\"} said app-object-secret"
    assert.strictEqual(
      maskSecrets(text),
      "{\"mt\":\"X\",\"digest\":\"***\",\"Password\":\"***\",\"h323\":\"user\"} said app-object-secret"
    )
    assert.strictEqual(
      maskSecrets(text, [Redacted.make(password)]),
      "{\"mt\":\"X\",\"digest\":\"***\",\"Password\":\"***\",\"h323\":\"user\"} said ***"
    )
  })
})
