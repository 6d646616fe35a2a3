/**
 * A flood of forged notifications costs a bounded log: one line per request however many items it carries, every
 * outside value clipped, repeats of that line rate-limited with a count, and a request whose first items all fail the
 * subscription check is refused without looking at the rest.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Logger, Metric, Redacted } from "effect"
import { flushRepeats, makeRepeatGate, repeatGateLayer } from "../../src/observability/LogRepeats.ts"
import { notificationsRejected } from "../../src/domain/Metrics.ts"
import { NotificationsInbox, refuseAfterFailedItems } from "../../src/graph/notifications/NotificationsInbox.ts"
import { defaultSubscriptionSettings } from "../../src/graph/subscriptions/SubscriptionSettings.ts"
import { tempDir } from "../support/tempDir.ts"
import { buildServer, post, webhookServer } from "./notificationsHarness.ts"

const rejected = (reason: string) =>
  Metric.value(Metric.withAttributes(notificationsRejected, { reason })).pipe(Effect.map((state) => Number(state.count)))

/** The webhook on a real socket, logging through the connector's repeat gate into `lines`. */
const startWebhook = (lines: Array<string>) =>
  Effect.gen(function*() {
    const settings = defaultSubscriptionSettings({
      publicBaseUrl: "https://connector.example",
      appId: "app",
      maxBodyBytes: 4 * 1024 * 1024,
      decryptWorkers: 1
    })
    const gate = makeRepeatGate()
    const capture = Logger.map(Logger.formatJson, (line) => void lines.push(line))
    const server = yield* buildServer(
      webhookServer(settings, yield* tempDir).pipe(
        Layer.provide(repeatGateLayer(gate)),
        Layer.provide(Logger.layer([capture]))
      )
    )
    return {
      url: server.baseUrl + settings.notificationPath,
      gate,
      inbox: Context.get(server.context, NotificationsInbox),
      /** Runs a call of the test's own fiber with the webhook's loggers. */
      logged: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, Logger.layer([capture]))
    }
  })

/** 65,535 items with unknown subscription ids in just under 4 MiB; the first id alone is 1.2 MB. */
const floodBody = () => {
  const items = [`{"subscriptionId":"${"x".repeat(1_200_000)}","changeType":"u"}`]
  for (let i = 1; i < 65_535; i++) items.push(`{"subscriptionId":"s${i}","changeType":"u"}`)
  const body = `{"value":[${items.join(",")}]}`
  assert.isBelow(body.length, 4 * 1024 * 1024)
  return body
}

describe("webhook flood (real sockets)", () => {
  it.live("a 4 MiB POST of 65,535 forged items: one clipped log line, every item counted, the rest never checked", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const webhook = yield* startWebhook(lines)
      const before = yield* rejected("unknown_subscription")
      const answer = yield* post(webhook.url, floodBody())
      assert.strictEqual(answer.status, 202)
      assert.strictEqual((yield* rejected("unknown_subscription")) - before, 65_535)
      assert.strictEqual(lines.length, 1, lines.map((l) => l.slice(0, 200)).join("\n"))
      const line = lines[0]!
      assert.isBelow(line.length, 2_000)
      assert.include(line, "65,535 of 65,535 items")
      assert.include(line, `first ${refuseAfterFailedItems} items failed`)
      assert.include(line, "(+1199940 chars)")
    }).pipe(Effect.scoped))

  it.live("the same rejection repeated: written once, then summarised with a count", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const webhook = yield* startWebhook(lines)
      const forged = { value: [{ subscriptionId: "not-ours", clientState: "guess", changeType: "updated" }] }
      for (let i = 0; i < 50; i++) assert.strictEqual((yield* post(webhook.url, forged)).status, 202)
      assert.strictEqual(lines.length, 1)
      // A minute later the gate reports what it left out, through the same loggers.
      const summaries = webhook.gate.due(Date.now() + 60_000)
      assert.deepStrictEqual(summaries.map((s) => s.suppressed), [49])
      const flushed: Array<string> = []
      const gate = makeRepeatGate({ windowMillis: 1, maxKinds: 10 })
      gate.admit("k", "Warn", "notification rejected", 0)
      gate.admit("k", "Warn", "notification rejected", 0)
      yield* flushRepeats(gate).pipe(
        Effect.provide(Logger.layer([Logger.map(Logger.formatJson, (line) => void flushed.push(line))]))
      )
      assert.strictEqual(flushed.length, 1)
      assert.include(flushed[0]!, "notification rejected … 1 more in the last 0 s")
    }).pipe(Effect.scoped))

  it.live("a valid item first keeps the whole request checked; foreign items first refuse the whole request", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const webhook = yield* startWebhook(lines)
      yield* webhook.inbox.register({ id: "sub-1", kind: "users", key: "users", clientState: Redacted.make("cs") })
      const valid = { subscriptionId: "sub-1", clientState: "cs", changeType: "updated", resource: "users/u1" }
      const foreign = (n: number) => Array.from({ length: n }, (_, i) => ({ subscriptionId: `other-${i}`, clientState: "cs", changeType: "updated" }))

      const accepted = yield* webhook.logged(webhook.inbox.acceptNotifications({ value: [valid, ...foreign(40)] }))
      assert.strictEqual(accepted, 1)
      assert.include(lines.at(-1)!, "40 of 41 items")
      assert.notInclude(lines.at(-1)!, "refused after")

      const refused = yield* webhook.logged(webhook.inbox.acceptNotifications({ value: [...foreign(refuseAfterFailedItems), valid, ...foreign(5)] }))
      assert.strictEqual(refused, 0)
      assert.include(lines.at(-1)!, `${refuseAfterFailedItems + 6} of ${refuseAfterFailedItems + 6} items`)
      assert.include(lines.at(-1)!, "6 not checked")
    }).pipe(Effect.scoped))
})
