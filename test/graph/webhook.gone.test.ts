/**
 * A notification POST whose sender closed the connection before the answer (Graph's side gives up after its timeout
 * while the POST waits in the listen queue, and sends it again) is not handled: its items are counted as
 * `client_gone` and never reach the pipeline. A POST answered is handled whatever the sender does afterwards.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric, Stream } from "effect"
import { connect } from "node:net"
import { notificationsRejected, webhookResponseSeconds } from "../../src/domain/Metrics.ts"
import { collect, record } from "../support/streams.ts"
import { APP_ID, post, richWebhook, TENANT } from "./notificationsHarness.ts"

const gone = Metric.value(Metric.withAttributes(notificationsRejected, { reason: "client_gone" })).pipe(
  Effect.map((state) => Number(state.count))
)

const answers = (until: "produced" | "flushed") =>
  Metric.value(Metric.withAttributes(webhookResponseSeconds, { until })).pipe(Effect.map((state) => state.count))

/** Writes one HTTP POST of `body` on a new connection and closes it at once, in the same task: no answer is read. */
const postAndHangUp = (url: string, body: unknown) =>
  Effect.callback<void>((resume) => {
    const target = new URL(url)
    const text = JSON.stringify(body)
    const socket = connect(Number(target.port), target.hostname, () => {
      socket.write(
        `POST ${target.pathname} HTTP/1.1\r\nhost: ${target.host}\r\ncontent-type: application/json\r\n` +
          `content-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`
      )
      socket.destroy()
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
      yield* postAndHangUp(url, { value: ["gone-1", "gone-2", "gone-3"].map(busy), validationTokens: [token] })
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
})
