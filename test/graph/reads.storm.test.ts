/**
 * A Graph read that fails through a 429 storm (the Graph client's own retries exhausted) is not left to the next round:
 * the same users are read again with capped backoff, never sooner than Retry-After, and the presence light is amber
 * while that lasts (red after five minutes). Faults come from the Graph simulator's control API.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Stream, SubscriptionRef } from "effect"
import { type ReadHealth } from "../../src/graph/presence/ReadRetry.ts"
import { presenceSubscriptionLight, readsLight, readsRedAfterMillis } from "../../src/status/Lights.ts"
import { lightLine } from "../../src/status/LightText.ts"
import type { Plan } from "../../src/connector/Plan.ts"
import { firstWhere } from "../support/streams.ts"
import { tempDir } from "../support/tempDir.ts"
import { ids, startConnector, startSimulator, startWebhook } from "./subscriptionsHarness.ts"

const throttle = (url: string, count: number, retryAfterSeconds: number) =>
  Effect.promise(() =>
    fetch(`${url}/_sim/faults/throttle`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ count, retryAfterSeconds })
    }).then((r) => r.status)
  )

describe("presence reads through a 429 storm (real sockets)", () => {
  it.live("the users of a failed read are read again with backoff honouring Retry-After, without waiting for a round", () =>
    Effect.gen(function*() {
      const sim = yield* startSimulator({ users: 3, accounts: 1 })
      const webhook = yield* startWebhook(sim, yield* tempDir)
      const { source } = yield* startConnector(sim, webhook, {
        accounts: 0,
        mode: "poll",
        pollSeconds: 3_600,
        readRetryFirstMillis: 50,
        readRetryMaxMillis: 1_000
      })
      const [alice] = ids(3) as [string]
      yield* sim.setPresence(alice, { availability: "Busy", activity: "InACall" })

      const states: Array<ReadHealth> = []
      const recovered = yield* Deferred.make<void>()
      yield* SubscriptionRef.changes(source.readHealth).pipe(
        Stream.runForEach((health) =>
          Effect.sync(() => states.push(health)).pipe(
            Effect.andThen(health._tag === "Ok" && states.length > 1 ? Deferred.succeed(recovered, undefined) : Effect.void)
          )
        ),
        Effect.forkScoped({ startImmediately: true })
      )
      const busy = yield* firstWhere(source.changes, (c) => c.userId === alice && c.presence.activity === "InACall")

      // Eight 429s with Retry-After 0.3 s: the first read and its one client-side retry fail, so do the next tries.
      assert.strictEqual(yield* throttle(sim.url, 8, 0.3), 200)
      yield* source.initialSync(ids(3))
      yield* busy
      yield* Deferred.await(recovered)

      const failing = states.filter((s): s is Extract<ReadHealth, { _tag: "Failing" }> => s._tag === "Failing")
      assert.isAtLeast(failing.length, 2, "failed, then failed again before it worked")
      assert.isTrue(failing.every((s) => s.users === 3 && s.error === "TooManyRequests (HTTP 429)"))
      assert.isTrue(failing.every((s) => s.retryInMillis >= 300), "never sooner than Retry-After")
      assert.deepStrictEqual(states.at(-1), { _tag: "Ok" })
    }).pipe(Effect.scoped), 30_000)

  it("the presence light: amber while reads are retried, red after five minutes, green again when they work", () => {
    const plan = { synced: [{}] } as unknown as Plan
    const failing: ReadHealth = { _tag: "Failing", users: 20, since: 0, error: "TooManyRequests (HTTP 429)", attempts: 3, retryInMillis: 8_000 }
    assert.strictEqual(readsLight({ _tag: "Ok" }, 0), undefined)
    const amber = presenceSubscriptionLight("poll", undefined, plan, undefined, failing, 60_000)
    assert.strictEqual(amber.state, "amber")
    // In words on the page, with the technical cause and the time as data (the log line has them as text).
    assert.strictEqual(amber.reason, "reading the presence of 20 users keeps failing: Microsoft Graph is throttling the connector (too many requests); retrying in 8 s")
    assert.strictEqual(amber.since, 0)
    assert.strictEqual(amber.detail, "TooManyRequests (HTTP 429)")
    assert.match(lightLine(amber), /reading the presence of 20 users keeps failing: .*; retrying in 8 s since 00:00 UTC \(TooManyRequests \(HTTP 429\)\)/)
    assert.strictEqual(presenceSubscriptionLight("poll", undefined, plan, undefined, failing, readsRedAfterMillis).state, "red")
    assert.strictEqual(presenceSubscriptionLight("poll", undefined, plan, undefined, { _tag: "Ok" }, readsRedAfterMillis).state, "green")
  })
})
