/**
 * The reconciler under TestClock: every served user is read again every `reconcileMinutes` (5) from the end of the
 * initial sync, and only what differs from the presence known for a user becomes a change.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import type { GraphPresence } from "../../src/domain/Presence.ts"
import { PresenceReader } from "../../src/graph/presence/PresenceReader.ts"
import { defaultSubscriptionSettings, SubscriptionSettings } from "../../src/graph/subscriptions/SubscriptionSettings.ts"
import { buildPushSource } from "../graph/harness.ts"
import { record } from "../support/streams.ts"
import { inertWebhook, minuteOf } from "./fakeGraph.ts"

const subscriptionSettings = SubscriptionSettings.layer(defaultSubscriptionSettings({ publicBaseUrl: "https://connector.example", appId: "c" }))

describe("the reconciler (TestClock, fake presence reads)", () => {
  it.effect("the reconciler re-reads every user every 5 minutes and emits only differences", () =>
    Effect.gen(function*() {
      const ids = ["u1", "u2", "u3"]
      const current = new Map<string, GraphPresence>(
        ids.map((id) => [id, { id, availability: "Available", activity: "Available" }])
      )
      const reads: Array<{ minute: number; ids: ReadonlyArray<string> }> = []
      const reader = Layer.succeed(PresenceReader, PresenceReader.of({
        getPresences: (wanted) =>
          Effect.clockWith((clock) =>
            Effect.sync(() => {
              reads.push({ minute: minuteOf(clock.currentTimeMillisUnsafe()), ids: [...wanted] })
              return wanted.map((id) => current.get(id)!)
            })
          )
      }))
      const source = yield* buildPushSource(Layer.mergeAll(reader, inertWebhook, subscriptionSettings))
      const changes = yield* record(source.changes)
      yield* source.initialSync(ids)

      const set = (id: string, activity: "Available" | "Busy" | "Away") =>
        current.set(id, { id, availability: activity, activity })
      for (let minute = 1; minute <= 60; minute++) {
        yield* TestClock.adjust("1 minute")
        if (minute === 12) set("u2", "Busy")
        if (minute === 31) set("u3", "Away")
        if (minute === 33) set("u3", "Available") // changed and back between two rounds: nothing to report
        if (minute === 47) set("u1", "Away")
      }

      assert.deepStrictEqual(reads.map((r) => r.minute), [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60])
      assert.isTrue(reads.every((r) => r.ids.join() === ids.join()), "every round reads every user")
      assert.deepStrictEqual(changes.map((c) => `${minuteOf(c.receivedAt)} ${c.userId} ${c.presence.activity} ${c.origin}`), [
        "0 u1 Available initial",
        "0 u2 Available initial",
        "0 u3 Available initial",
        "15 u2 Busy reconcile",
        "50 u1 Away reconcile"
      ])
    }).pipe(Effect.scoped))
})
