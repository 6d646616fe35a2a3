/**
 * The application's presence budget under TestClock: a request holds its place while in flight and for the window
 * after its answer (so the connector's count is never below Graph's, which counts arrivals), a full window makes the
 * next request wait instead of failing, and a Retry-After pauses every request.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { makeBudget } from "../../src/graph/sessions/PresenceBudget.ts"

describe("presence budget (TestClock)", () => {
  it.effect("a full window makes the next request wait until the oldest answer leaves it", () =>
    Effect.gen(function*() {
      const budget = yield* makeBudget({ requestsPerWindow: 2, windowMillis: 30_000, marginMillis: 500 })
      yield* budget.run(Effect.void)
      yield* TestClock.adjust("10 seconds")
      yield* budget.run(Effect.void)
      const third = yield* Effect.forkChild(Effect.andThen(budget.run(Effect.void), Clock.currentTimeMillis))
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual(yield* Fiber.join(third), 30_500, "the first answer (t=0) left the 30.5 s window")
      assert.strictEqual((yield* budget.usage).used, 2)
    }))

  it.effect("a request in flight holds its place until it is answered, then for a window from the answer", () =>
    Effect.gen(function*() {
      const budget = yield* makeBudget({ requestsPerWindow: 1, windowMillis: 1_000, marginMillis: 0 })
      const answer = yield* Deferred.make<void>()
      const slow = yield* Effect.forkChild(budget.run(Deferred.await(answer)))
      const next = yield* Effect.forkChild(Effect.andThen(budget.run(Effect.void), Clock.currentTimeMillis))
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(next.pollUnsafe(), undefined, "still waiting: the first request has no answer yet")
      yield* Deferred.succeed(answer, undefined)
      yield* Fiber.join(slow)
      yield* TestClock.adjust("999 millis")
      assert.strictEqual(next.pollUnsafe(), undefined)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(next), 6_000)
    }))

  it.effect("a Retry-After pauses every request until it has passed", () =>
    Effect.gen(function*() {
      const budget = yield* makeBudget({ requestsPerWindow: 100, windowMillis: 30_000, marginMillis: 0 })
      yield* budget.pauseFor(3_000)
      assert.strictEqual((yield* budget.usage).pausedUntil, 3_000)
      const waiting = yield* Effect.forkChild(Effect.andThen(budget.run(Effect.void), Clock.currentTimeMillis))
      yield* TestClock.adjust("3 seconds")
      assert.strictEqual(yield* Fiber.join(waiting), 3_000)
      assert.strictEqual((yield* budget.usage).pausedUntil, undefined)
    }))
})
