/**
 * A notification POST whose sender closed the connection before the answer (Graph's side gives up after its timeout
 * while the POST waits in the listen queue, and sends it again) is not handled: its items are counted as
 * `client_gone` and never reach the pipeline. A POST answered is handled whatever the sender does afterwards. The
 * check waits for the event loop's next poll only after a turn long enough for a sender to give up (LoopWatch.ts):
 * while the loop keeps turning, a new connection's first POST is handled at once.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric, Stream } from "effect"
import { connect } from "node:net"
import { performance } from "node:perf_hooks"
import { heldMillis, tickMillis } from "../../src/http/LoopWatch.ts"
import { notificationsRejected, webhookResponseSeconds } from "../../src/domain/Metrics.ts"
import { collect, record } from "../support/streams.ts"
import { APP_ID, post, richWebhook, TENANT } from "./notificationsHarness.ts"

const gone = Metric.value(Metric.withAttributes(notificationsRejected, { reason: "client_gone" })).pipe(
  Effect.map((state) => Number(state.count))
)

const answers = (until: "produced" | "flushed") =>
  Metric.value(Metric.withAttributes(webhookResponseSeconds, { until })).pipe(Effect.map((state) => state.count))

/**
 * Writes one HTTP POST of `body` on a new connection and closes it at once, in the same task: no answer is read. With
 * `holdMillis`, the event loop is then held that long (this process's, the server's too), as a long turn would hold it
 * while the connection waited in the listen queue.
 */
const postAndHangUp = (url: string, body: unknown, holdMillis = 0) =>
  Effect.callback<void>((resume) => {
    const target = new URL(url)
    const text = JSON.stringify(body)
    const socket = connect(Number(target.port), target.hostname, () => {
      socket.write(
        `POST ${target.pathname} HTTP/1.1\r\nhost: ${target.host}\r\ncontent-type: application/json\r\n` +
          `content-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`
      )
      socket.destroy()
      const until = performance.now() + holdMillis
      while (performance.now() < until) {
        // Holding the event loop, as a long turn would.
      }
    })
    socket.once("close", () => resume(Effect.void))
  })

describe("webhook: a sender that has gone (real sockets)", () => {
  // The POST taken before effect's server (the connector's own server) and on the route.
  it.live.each(["node", "routes"] as const)("the items of a POST whose connection closed before the answer are counted and dropped; the next POST is handled (%s)", (server) =>
    Effect.gen(function*() {
      const { inbox, jwks, richItem, url } = yield* richWebhook({ floodLatencyBudgetMillis: 0 }, server)
      const token = yield* jwks.validationToken(APP_ID, TENANT)
      const busy = (userId: string) => richItem(userId, { id: userId, availability: "Busy", activity: "Busy" })
      const handedOver = yield* record(inbox.presences)
      const before = yield* gone
      const producedBefore = yield* answers("produced")
      const flushedBefore = yield* answers("flushed")
      // After a turn long enough for the sender to have given up (a connection waits in the listen queue about a turn).
      yield* postAndHangUp(url, { value: ["gone-1", "gone-2", "gone-3"].map(busy), validationTokens: [token] }, tickMillis + heldMillis + 300)
      // The server reads the first connection (its request, then its end) before the second one connects, and its
      // handler waits for the same poll as the later one's: once the second is answered, the first was decided.
      // A POST whose sender reads the answer: handled.
      const later = yield* collect(inbox.presences.pipe(Stream.filter((p) => p.userId.startsWith("kept-"))), 2)
      assert.strictEqual((yield* post(url, { value: ["kept-1", "kept-2"].map(busy), validationTokens: [token] })).status, 202)
      assert.deepStrictEqual((yield* later).map((p) => p.userId), ["kept-1", "kept-2"])
      assert.strictEqual((yield* gone) - before, 3)
      // Both POSTs' answers were timed (the one nobody read until its connection closed).
      assert.strictEqual((yield* answers("produced")) - producedBefore, 2)
      assert.strictEqual((yield* answers("flushed")) - flushedBefore, 2)
      assert.deepStrictEqual(handedOver.filter((p) => p.userId.startsWith("gone-")), [])
    }).pipe(Effect.scoped))

  it.live.each(["node", "routes"] as const)("a POST whose sender hung up while the event loop kept turning is handled, not waited for (%s)", (server) =>
    Effect.gen(function*() {
      const { inbox, jwks, richItem, url } = yield* richWebhook({ floodLatencyBudgetMillis: 0 }, server)
      const token = yield* jwks.validationToken(APP_ID, TENANT)
      const busy = (userId: string) => richItem(userId, { id: userId, availability: "Busy", activity: "Busy" })
      const before = yield* gone
      const arrived = yield* collect(inbox.presences.pipe(Stream.filter((p) => p.userId.startsWith("quick-"))), 2)
      // No turn held the loop: the sender cannot have given up in the listen queue, so its POST is not waited for.
      yield* postAndHangUp(url, { value: ["quick-1", "quick-2"].map(busy), validationTokens: [token] })
      assert.deepStrictEqual((yield* arrived).map((p) => p.userId), ["quick-1", "quick-2"])
      assert.strictEqual((yield* gone) - before, 0)
    }).pipe(Effect.scoped))
})
