/**
 * The intake's check of a POST's items against the subscriptions (Intake.ts): each distinct (subscriptionId,
 * clientState) pair is compared once per POST, and every item gets its own pair's answer, however the pairs alternate.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, PubSub, Queue, Redacted } from "effect"
import { acceptNotifications, type Batch, KnownSubscriptions, type LifecycleSignal } from "../../src/graph/notifications/Intake.ts"
import { richBatchItem, subscription } from "./richItems.ts"

const item = (user: string, subscriptionId: string, clientState: string | null) => ({
  ...richBatchItem({ id: user, availability: "Busy", activity: "Busy" }).item,
  subscriptionId,
  clientState
})

describe("the intake's subscription check (Intake.ts)", () => {
  it.effect("a POST of one item, of one pair, and of alternating pairs: each item accepted or refused by its own pair", () =>
    Effect.gen(function*() {
      const subscriptions = new KnownSubscriptions()
      subscriptions.register(subscription)
      subscriptions.register({ ...subscription, id: "sub-2", key: "shard-2", clientState: Redacted.make("other") })
      const intake = { subscriptions, queue: yield* Queue.unbounded<Batch>(), lifecycle: yield* PubSub.unbounded<LifecycleSignal>() }
      const accepted = (items: ReadonlyArray<ReturnType<typeof item>>) =>
        Effect.gen(function*() {
          const count = yield* acceptNotifications(intake, { value: items })
          const batch = count === 0 ? [] : (yield* Queue.take(intake.queue)).items
          return { count, users: batch.map((entry) => `${entry.item.resourceData?.id}@${entry.subscription.id}`) }
        })
      assert.deepStrictEqual(yield* accepted([item("a", "sub-1", "state")]), { count: 1, users: ["a@sub-1"] })
      assert.deepStrictEqual(yield* accepted([item("a", "sub-1", "wrong")]), { count: 0, users: [] })
      assert.deepStrictEqual(
        yield* accepted([
          item("a", "sub-1", "state"),
          item("b", "sub-1", "state"),
          item("c", "sub-2", "state"),
          item("d", "sub-2", "other"),
          item("e", "sub-1", "state"),
          item("f", "sub-2", "state"),
          item("g", "sub-1", null),
          item("h", "sub-2", "other"),
          item("i", "sub-3", "state")
        ]),
        { count: 5, users: ["a@sub-1", "b@sub-1", "d@sub-2", "e@sub-1", "h@sub-2"] }
      )
    }))
})
