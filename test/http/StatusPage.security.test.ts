/**
 * The status page's defences over real sockets: security headers on every answer, a per-address backoff for wrong
 * admin passwords (summarised in the log, counted in a metric, never delaying another address), and bounded live
 * feeds: a limited number at once, and a reader that stops reading is disconnected instead of being buffered for.
 */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { request as httpRequest } from "node:http"
import { connect } from "node:net"
import { Context, Deferred, Effect, Fiber, Layer, Logger, Metric, Redacted } from "effect"
import { HttpServer } from "effect/http"
import { makeRepeatGate, repeatGateLayer } from "../../src/observability/LogRepeats.ts"
import { initialSnapshot, StatusBoard, type UserRow } from "../../src/status/StatusBoard.ts"
import type { BackoffPolicy } from "../../src/domain/LoginBackoff.ts"
import { loginFailures } from "../../src/domain/Metrics.ts"
import { serveRoutes } from "../../src/http/Server.ts"
import { defaultStatusPageLimits, type StatusPageLimits } from "../../src/status/StatusEvents.ts"
import { AdminPassword, contentSecurityPolicy, StatusLoginBackoff, StatusRoutes } from "../../src/status/StatusRoutes.ts"
import { StatusPageLimits as Limits } from "../../src/status/StatusEvents.ts"
import { basicAuth, until } from "../support/waiting.ts"

const password = "status-security-password"

const start = (options: { readonly limits?: Partial<StatusPageLimits>; readonly backoff?: BackoffPolicy } = {}) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const gate = makeRepeatGate()
    const layer = serveRoutes(StatusRoutes, { host: "127.0.0.1", port: 0 }).pipe(
      Layer.provideMerge(StatusBoard.layer(initialSnapshot({ version: "1.0.0", startedAt: 0, mode: "push" }))),
      Layer.provide(Layer.succeed(AdminPassword, Redacted.make(password))),
      Layer.provide(Layer.succeed(Limits, { ...defaultStatusPageLimits, ...options.limits })),
      Layer.provide(options.backoff === undefined ? Layer.empty : Layer.succeed(StatusLoginBackoff, options.backoff)),
      Layer.provide(repeatGateLayer(gate)),
      Layer.provide(Logger.layer([Logger.make(({ message }) => void lines.push(String(message)))]))
    )
    const context = yield* Layer.build(layer)
    const address = Context.get(context, HttpServer.HttpServer).address
    const port = address._tag === "UnixPathAddress" ? 0 : address.port
    return { port, base: `http://127.0.0.1:${port}`, board: Context.get(context, StatusBoard), lines, gate }
  })

/** A GET from a chosen local address; resolves with the status and headers once they arrive (the body is dropped). */
const get = (port: number, path: string, options: { readonly auth?: string; readonly from?: string } = {}) =>
  Effect.callback<{ status: number; headers: Record<string, string | Array<string> | undefined> }>((resume) => {
    const req = httpRequest({
      host: "127.0.0.1",
      port,
      path,
      localAddress: options.from ?? "127.0.0.1",
      headers: options.auth === undefined ? {} : { authorization: options.auth }
    }, (response) => {
      resume(Effect.succeed({ status: response.statusCode ?? 0, headers: response.headers }))
      response.destroy()
    })
    req.on("error", () => {})
    req.end()
  })

const counter = (outcome: string) =>
  Metric.value(Metric.withAttributes(loginFailures, { endpoint: "status", outcome })).pipe(Effect.map((s) => Number(s.count)))

/** Rows whose every field changes with `round`: each delta carries all of them. */
const bigRows = (round: number): Array<UserRow> =>
  Array.from({ length: 2_000 }, (_, i) => ({
    teamsId: `user-${i}`,
    name: `User ${i} ${"n".repeat(300)} ${round}`,
    upn: `user${i}@contoso.com`,
    pbxGuid: `guid-${i}`,
    pbxName: `user${i}`,
    pbx: "pbx-master",
    licensed: true,
    availability: "Busy",
    activity: `InACall-${round}`,
    written: "on-the-phone"
  }))

describe("status page security (real sockets)", () => {
  it.live("every answer says nosniff; the page and its API carry the CSP; /api/* is never cached", () =>
    Effect.scoped(Effect.gen(function*() {
      const { port } = yield* start()
      const auth = basicAuth(password)
      for (const path of ["/", "/static/app.js", "/static/style.css", "/api/status", "/healthz", "/readyz", "/metrics", "/nothing-here"]) {
        const answer = yield* get(port, path, { auth })
        assert.strictEqual(answer.headers["x-content-type-options"], "nosniff", path)
      }
      assert.strictEqual((yield* get(port, "/")).headers["x-content-type-options"], "nosniff", "the 401 too")
      for (const path of ["/", "/static/app.js", "/api/status", "/api/events"]) {
        assert.strictEqual((yield* get(port, path, { auth })).headers["content-security-policy"], contentSecurityPolicy, path)
      }
      for (const path of ["/api/status", "/api/events"]) {
        assert.strictEqual((yield* get(port, path, { auth })).headers["cache-control"], "no-store", path)
      }
    })))

  it("the CSP allows exactly what the page uses: its own script and stylesheet, no inline code", () => {
    const html = readFileSync(new URL("../../src/status/static/index.html", import.meta.url), "utf8")
    assert.notMatch(html, /<script>|<style|\sstyle=|\son[a-z]+=/i, "no inline script, style or handler")
    assert.match(html, /<script src="\.\/static\/app\.js"><\/script>/)
    assert.match(html, /<link rel="stylesheet" href="\.\/static\/style\.css">/)
    const js = readFileSync(new URL("../../src/status/static/app.js", import.meta.url), "utf8")
    assert.notMatch(js, /eval\(|new Function|innerHTML|setAttribute\("style"|\.style\./, "nothing the CSP forbids")
    assert.include(contentSecurityPolicy, "script-src 'self'")
    assert.include(contentSecurityPolicy, "connect-src 'self'")
  })

  it.live("wrong passwords: growing delay, then 429 for that address; one line per address; another address gets in", () =>
    Effect.scoped(Effect.gen(function*() {
      const backoff: BackoffPolicy = { firstDelayMillis: 10, maxDelayMillis: 40, refuseAfterFailures: 5, refuseMillis: 60_000, forgetMillis: 60_000, maxSources: 100 }
      const { gate, lines, port } = yield* start({ backoff })
      const failedBefore = yield* counter("failed")
      const refusedBefore = yield* counter("refused")
      for (let i = 0; i < 5; i++) assert.strictEqual((yield* get(port, "/api/status", { auth: basicAuth("wrong") })).status, 401)
      for (let i = 0; i < 30; i++) {
        const refused = yield* get(port, "/api/status", { auth: basicAuth(i % 2 === 0 ? "wrong" : password) })
        assert.strictEqual(refused.status, 429)
        assert.strictEqual(refused.headers["retry-after"], "60")
      }
      assert.strictEqual((yield* counter("failed")) - failedBefore, 5)
      assert.strictEqual((yield* counter("refused")) - refusedBefore, 30)
      assert.strictEqual((yield* get(port, "/api/status", { auth: basicAuth(password), from: "127.0.0.2" })).status, 200)
      assert.strictEqual(lines.filter((l) => l.includes("wrong admin password from 127.0.0.1")).length, 1)
      assert.strictEqual(lines.filter((l) => l.includes("127.0.0.1 is refused for 1 min after 5 wrong passwords")).length, 1)
      assert.deepStrictEqual(gate.due(Date.now() + 60_000).map((s) => [s.key, s.suppressed]).sort(), [
        ["status-login-blocked:127.0.0.1", 30],
        ["status-login:127.0.0.1", 4]
      ])
      // A request without credentials (a browser's first) is no failure.
      assert.strictEqual((yield* get(port, "/", { from: "127.0.0.3" })).status, 401)
      assert.strictEqual((yield* counter("failed")) - failedBefore, 5)
    })))

  it.live("live feeds: a limited number at once, and one that stops reading is cut off while a reading one stays", () =>
    Effect.scoped(Effect.gen(function*() {
      const limits = { maxEventStreams: 2, eventStreamStallMillis: 500, sampleMillis: 10, keepAliveMillis: 50 }
      const { board, port } = yield* start({ limits })
      const auth = basicAuth(password)
      const request = `GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${auth}\r\n\r\n`

      // A reader that takes everything: it stays, with keep-alives, for many times the stall time.
      const reader = connect({ host: "127.0.0.1", port })
      const keepAlives = yield* Deferred.make<void>()
      let seen = 0
      reader.on("data", (chunk: Buffer) => {
        seen += chunk.toString().split(": keep-alive").length - 1
        if (seen >= 30) Deferred.doneUnsafe(keepAlives, Effect.void)
      })
      reader.on("error", () => {})
      reader.write(request)

      // A reader that never reads, while every sample of the board is a large new table.
      const stalled = connect({ host: "127.0.0.1", port })
      const closed = yield* Deferred.make<void>()
      stalled.on("close", () => Deferred.doneUnsafe(closed, Effect.void))
      stalled.on("error", () => {})
      stalled.write(request, () => stalled.pause())
      yield* Effect.addFinalizer(() => Effect.sync(() => {
        reader.destroy()
        stalled.destroy()
      }))
      yield* until("a third feed refused", Effect.map(get(port, "/api/events", { auth }), (a) => (a.status === 503 ? true : undefined)))

      const churn = yield* Effect.gen(function*() {
        for (let round = 0;; round++) {
          yield* board.update((s) => ({ ...s, users: bigRows(round) }))
          yield* Effect.sleep("10 millis")
        }
      }).pipe(Effect.forkScoped)
      // The stalled feed is dropped: its place is free again …
      yield* until("a feed accepted again", Effect.map(get(port, "/api/events", { auth }), (a) => (a.status === 200 ? true : undefined)))
      yield* Fiber.interrupt(churn)
      // … and its connection is gone: reading what was left in the network buffers ends in a close.
      stalled.resume()
      yield* Deferred.await(closed)
      yield* Deferred.await(keepAlives)
      assert.isFalse(reader.destroyed, "the reading feed is still open")
    })), 30_000)
})
