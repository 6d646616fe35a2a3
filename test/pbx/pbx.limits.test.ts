/**
 * What a PBX connection may send: before AppLogin only a few small frames, after it frames up to pbx.maxFrameBytes;
 * more closes the connection with a clear log line. Failed logins from one address are answered ever more slowly and
 * then refused, summarised in the log per address, while a correct login from another address goes through.
 */
import { createHash } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Metric, Redacted } from "effect"
import WebSocket from "ws"
import { loginFailures, oversizedFrames } from "../../src/domain/Metrics.ts"
import { loginDigest } from "../../src/pbx/socket/AppLoginDigest.ts"
import { password, rawClient, startConnector } from "./harness.ts"

type Client = Effect.Success<ReturnType<typeof rawClient>>

const counter = (metric: typeof loginFailures, attributes: Record<string, string>) =>
  Metric.value(Metric.withAttributes(metric, attributes)).pipe(Effect.map((state) => Number(state.count)))

const info = "{\"appobj\":\"teams-presence\",\"pbx\":\"pbx-master\",\"lics\":5,\"apps\":[]}"

/** AppChallenge, then an AppLogin with the digest of `secret`; the AppLoginResult's `ok`. */
const logIn = (client: Client, secret: string) =>
  Effect.gen(function*() {
    client.socket.send(JSON.stringify({ mt: "AppChallenge" }))
    const challenge = (JSON.parse(yield* client.next((f) => f.includes("AppChallengeResult"))) as { challenge: string }).challenge
    const fields = { app: "pbx", domain: "example.com", sip: "teams-presence", guid: createHash("md5").update("x").digest("hex"), dn: "teams-presence" }
    const digest = loginDigest({ ...fields, infoText: info }, challenge, Redacted.make(secret))
    client.socket.send(
      `{"mt":"AppLogin","app":"pbx","domain":"example.com","sip":"teams-presence","guid":"${fields.guid}","dn":"teams-presence","digest":"${digest}","info":${info}}`
    )
    const result = JSON.parse(yield* client.next((f) => f.includes("AppLoginResult"))) as { ok: boolean }
    return result.ok
  })

/** Opens a websocket; resolves with the HTTP status when the server refuses the upgrade. */
const refusedUpgrade = (url: string) =>
  Effect.callback<number | "open">((resume) => {
    const ws = new WebSocket(url)
    ws.on("unexpected-response", (_request, response) => {
      resume(Effect.succeed(response.statusCode ?? 0))
      ws.terminate()
    })
    ws.on("open", () => {
      resume(Effect.succeed("open"))
      ws.terminate()
    })
    ws.on("error", () => {})
  })

describe("PBX connection limits (real sockets)", () => {
  it.live("before login: a 100 KiB frame closes the connection, with one log line", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const before = yield* counter(oversizedFrames, { phase: "login" })
      const client = yield* rawClient(connector.url)
      client.socket.send("x".repeat(100 * 1024))
      yield* Deferred.await(client.closed)
      yield* connector.logged((line) => line.includes("before logging in"))
      assert.strictEqual((yield* counter(oversizedFrames, { phase: "login" })) - before, 1)
      const lines = connector.logs.filter((line) => line.includes("before logging in"))
      assert.strictEqual(lines.length, 1, connector.logs.join("\n"))
      assert.match(lines[0]!, /closed: it sent \d+ bytes before logging in \(at most 16384 bytes/)
      assert.isFalse(connector.logs.some((line) => line.includes("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")))
    }).pipe(Effect.scoped))

  it.live("before login: a 5 KiB frame or a seventeenth frame is refused", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const big = yield* rawClient(connector.url)
      big.socket.send(JSON.stringify({ mt: "AppChallenge", pad: "y".repeat(5 * 1024) }))
      yield* Deferred.await(big.closed)
      assert.isTrue(connector.logs.some((line) => /a frame of \d+ bytes before logging in \(at most 4096\)/.test(line)))
      const chatty = yield* rawClient(connector.url, { localAddress: "127.0.0.3" })
      for (let i = 0; i < 17; i++) chatty.socket.send(JSON.stringify({ mt: "KeepAlive" }))
      yield* Deferred.await(chatty.closed)
      assert.isTrue(connector.logs.some((line) => line.includes("more than 16 frames before logging in")))
    }).pipe(Effect.scoped))

  it.live("after login: a frame up to pbx.maxFrameBytes is taken, a larger one closes the connection with a clear line", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector({ maxFrameBytes: 64 * 1024 })
      const before = yield* counter(oversizedFrames, { phase: "session" })
      const client = yield* rawClient(connector.url)
      assert.isTrue(yield* logIn(client, password))
      // Within the limit: an unexpected message, logged (clipped) and ignored; the connection stays.
      client.socket.send(JSON.stringify({ mt: "Bogus", pad: "z".repeat(60 * 1024) }))
      client.socket.send(JSON.stringify({ mt: "AppInfo" }))
      yield* client.next((f) => f.includes("AppInfoResult"))
      assert.isTrue(connector.logs.some((line) => line.includes("unexpected Bogus") && line.length < 1_000))
      client.socket.send("z".repeat(65 * 1024))
      const code = yield* Deferred.await(client.closed)
      assert.notStrictEqual(code, 1000)
      yield* connector.logged((line) => line.includes("connection closed: the PBX sent"))
      assert.strictEqual((yield* counter(oversizedFrames, { phase: "session" })) - before, 1)
      assert.isTrue(
        connector.logs.some((line) => line.includes("connection closed: the PBX sent a frame over the limit of 65536 bytes (pbx.maxFrameBytes)")),
        connector.logs.join("\n")
      )
    }).pipe(Effect.scoped))

  it.live("failed logins: growing delay, then refusal for that address only; one summarised log line per address", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector({
        loginBackoff: { firstDelayMillis: 20, maxDelayMillis: 80, refuseAfterFailures: 5, refuseMillis: 60_000, forgetMillis: 60_000, maxSources: 100 }
      })
      const failedBefore = yield* counter(loginFailures, { endpoint: "pbx", outcome: "failed" })
      const refusedBefore = yield* counter(loginFailures, { endpoint: "pbx", outcome: "refused" })
      for (let i = 0; i < 5; i++) {
        const client = yield* rawClient(connector.url)
        assert.isFalse(yield* logIn(client, "wrong"))
        yield* Deferred.await(client.closed)
      }
      assert.strictEqual((yield* counter(loginFailures, { endpoint: "pbx", outcome: "failed" })) - failedBefore, 5)
      // The address is refused now: no websocket, 429.
      for (let i = 0; i < 20; i++) assert.strictEqual(yield* refusedUpgrade(connector.url), 429)
      assert.strictEqual((yield* counter(loginFailures, { endpoint: "pbx", outcome: "refused" })) - refusedBefore, 20)
      // Another address with the right password logs in at once.
      const other = yield* rawClient(connector.url, { localAddress: "127.0.0.2" })
      assert.isTrue(yield* logIn(other, password))
      // 5 failures and 20 refusals: one line per kind and address, the rest counted for the summary.
      assert.strictEqual(connector.logs.filter((line) => line.includes("PBX login refused (127.0.0.1)")).length, 1)
      assert.strictEqual(connector.logs.filter((line) => line.includes("127.0.0.1 are refused for 1 min after 5 failed logins")).length, 1)
      assert.strictEqual(connector.logs.filter((line) => line.includes("PBX connection from 127.0.0.1 refused: 5 failed logins")).length, 0)
      const summaries = connector.gate.due(Date.now() + 60_000)
      assert.deepStrictEqual(summaries.map((s) => [s.key, s.suppressed]).sort(), [
        ["pbx-login-blocked:127.0.0.1", 20],
        ["pbx-login-refused:127.0.0.1", 4]
      ])
    }).pipe(Effect.scoped))
})
