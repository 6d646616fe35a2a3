/**
 * A presence subscription that Graph deleted or let expire between renewals is noticed within a minute (each is looked
 * up every `verifySeconds`, default 30), shown red with the reason, and recreated — not left green until the next
 * renewal ten minutes later. TestClock drives the lookups; Graph is faked below the real GraphClient.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, SubscriptionRef } from "effect"
import { TestClock } from "effect/testing"
import { LicenceCheck } from "../../src/graph/subscriptions/SubscriptionLicenceCheck.ts"
import { SubscriptionManager } from "../../src/graph/subscriptions/SubscriptionManager.ts"
import { defaultSubscriptionSettings, SubscriptionSettings } from "../../src/graph/subscriptions/SubscriptionSettings.ts"
import { recordChanges } from "../support/streams.ts"
import { tempDir } from "../support/tempDir.ts"
import { graphStack, inertWebhook, makeFakeGraph, minuteOf } from "./fakeGraph.ts"

const userIds = ["00000001-aaaa-4bbb-8ccc-000000000001", "00000002-aaaa-4bbb-8ccc-000000000002"]

describe("subscriptions verified between renewals (TestClock, fake Graph)", () => {
  it.effect("a presence subscription deleted on the Graph side: red with the reason and recreated within a minute", () =>
    Effect.gen(function*() {
      const fake = makeFakeGraph({ tokenLifetimeSeconds: 3600 })
      const dataDir = yield* tempDir
      const context = yield* Layer.build(
        SubscriptionManager.layer.pipe(
          Layer.provideMerge(graphStack(fake, ["tech1"], dataDir)),
          Layer.provide(inertWebhook),
          Layer.provide(LicenceCheck.allowAll),
          Layer.provide(SubscriptionSettings.layer(defaultSubscriptionSettings({
            publicBaseUrl: "https://connector.example",
            appId: "c",
            includeResourceData: false
          })))
        )
      )
      const manager = Context.get(context, SubscriptionManager)
      yield* manager.setDesiredUsers(userIds)
      const presenceIds = () => fake.graphCalls().filter((c) => c.method === "POST" && c.subscription === "presence").length
      assert.strictEqual(presenceIds(), 1)

      // Every state the status page could show from now on.
      const seen = yield* recordChanges(manager.state)
      const recreated = yield* fake.until(() => presenceIds() === 2).pipe(Effect.forkScoped)

      // Two minutes after the start, Graph loses the presence subscription (an expiry, an administrator).
      yield* TestClock.adjust("2 minutes")
      const [id] = fake.subscriptionIds("presence")
      assert.isDefined(id)
      fake.vanish(id!)
      for (let i = 0; i < 2 && presenceIds() < 2; i++) yield* TestClock.adjust("30 seconds")
      yield* Fiber.join(recreated)

      const lookups = fake.graphCalls().filter((c) => c.method === "GET" && c.path === `/v1.0/subscriptions/${id}`)
      const missed = lookups.find((c) => c.status === 404)!
      assert.isDefined(missed, "the lookup found it gone")
      assert.isAtMost(missed.at - 2 * 60_000, 60_000, "within a minute of its loss")
      const created = fake.graphCalls().filter((c) => c.method === "POST" && c.subscription === "presence")
      assert.strictEqual(minuteOf(created[1]!.at), minuteOf(missed.at))
      const red = seen.find((s) => s.shards.some((shard) => shard.status === "error"))
      assert.match(red?.shards[0]?.error ?? "", /no longer exists on the Graph side \(deleted or expired\); recreating it/)
      const final = yield* SubscriptionRef.get(manager.state)
      assert.strictEqual(final.shards[0]?.status, "active")
      // Lookups are cheap: one GET of the presence subscription every 30 s (the first at 0:30), nothing else.
      const gets = fake.graphCalls().filter((c) => c.method === "GET")
      assert.deepStrictEqual(gets.map((c) => c.at / 1000), [30, 60, 90, 120, 150])
      assert.deepStrictEqual(gets.map((c) => c.status), [200, 200, 200, 200, 404])
    }).pipe(Effect.scoped))
})
