/**
 * The Graph simulator's batching of change notifications (src/simulators/graph/SimBatches.ts) on the TestClock: a
 * batch leaves when the window opened by its first change has passed, or at once when `maxBatch` changes wait; changes
 * of several kinds share a batch. And how it judges an endpoint by its recent answers (SimEndpoints.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Queue } from "effect"
import { TestClock } from "effect/testing"
import { batchChanges } from "../../src/simulators/graph/SimBatches.ts"
import { EndpointWindow } from "../../src/simulators/graph/SimEndpoints.ts"

/** Changes batched with `rules`; every batch handed on lands in `batches`. */
const batching = (rules: { readonly batchWindowMillis: number; readonly maxBatch: number }) =>
  Effect.gen(function*() {
    const batches = yield* Queue.unbounded<ReadonlyArray<string>>()
    const push = yield* batchChanges<string>(rules, (batch) => Queue.offer(batches, batch).pipe(Effect.asVoid))
    return { push: (...changes: ReadonlyArray<string>) => changes.forEach((change) => push(change)), batches }
  })

describe("Graph simulator batches", () => {
  it.effect("changes leave together once the window opened by the first one has passed, not before", () =>
    Effect.gen(function*() {
      const { batches, push } = yield* batching({ batchWindowMillis: 20, maxBatch: 100 })
      push("a", "b", "c")
      yield* TestClock.adjust("19 millis")
      assert.isTrue(Option.isNone(yield* Queue.poll(batches)), "no batch before the window has passed")
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(yield* Queue.take(batches), ["a", "b", "c"])
      // A later change opens a window of its own.
      push("d")
      yield* TestClock.adjust("19 millis")
      assert.isTrue(Option.isNone(yield* Queue.poll(batches)))
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(yield* Queue.take(batches), ["d"])
    }).pipe(Effect.scoped))

  it.effect("a full batch leaves at once; the rest waits for the window", () =>
    Effect.gen(function*() {
      const { batches, push } = yield* batching({ batchWindowMillis: 20, maxBatch: 2 })
      push("a", "b", "c", "d")
      assert.deepStrictEqual(yield* Queue.take(batches), ["a", "b"])
      assert.deepStrictEqual(yield* Queue.take(batches), ["c", "d"])
      push("e", "f", "g")
      assert.deepStrictEqual(yield* Queue.take(batches), ["e", "f"])
      yield* TestClock.adjust("19 millis")
      assert.isTrue(Option.isNone(yield* Queue.poll(batches)), "the change left over waits for the window")
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(yield* Queue.take(batches), ["g"])
      // A batch that fills while its window is open leaves when it is full, not at the window's end.
      push("h")
      yield* TestClock.adjust("5 millis")
      push("i")
      assert.deepStrictEqual(yield* Queue.take(batches), ["h", "i"])
      yield* TestClock.adjust("15 millis")
      assert.isTrue(Option.isNone(yield* Queue.poll(batches)), "the window ends with nothing left")
    }).pipe(Effect.scoped))

  it.effect("changes within one window share a batch", () =>
    Effect.gen(function*() {
      const { batches, push } = yield* batching({ batchWindowMillis: 20, maxBatch: 100 })
      push("presence")
      yield* TestClock.adjust("5 millis")
      push("user")
      yield* TestClock.adjust("15 millis")
      assert.deepStrictEqual([...(yield* Queue.take(batches))].sort(), ["presence", "user"])
    }).pipe(Effect.scoped))
})

describe("Graph simulator endpoint judgement", () => {
  const rules = { minSamples: 10, windowMillis: 60_000 }

  it("counts the POSTs within the window only, and delays or drops by the share of slow answers", () => {
    const endpoint = new EndpointWindow()
    for (let i = 0; i < 9; i++) endpoint.record(1_000 + i, false, false)
    endpoint.record(1_009, true, true)
    // 10 POSTs, one slow (10 %): delayed.
    assert.deepInclude(endpoint.stats("u", 2_000, rules), { posts: 10, slow: 1, failures: 1, slowRatio: 0.1, state: "delayed" })
    endpoint.record(2_000, true, false)
    endpoint.record(2_001, false, false)
    // 12 POSTs, two slow (16.7 %): dropped.
    assert.deepInclude(endpoint.stats("u", 3_000, rules), { posts: 12, slow: 2, state: "dropped" })
    // A minute after the first nine: they are out of the window, so too few POSTs remain to judge.
    assert.deepInclude(endpoint.stats("u", 61_008, rules), { posts: 3, slow: 2, failures: 1, state: "ok" })
    assert.deepInclude(endpoint.stats("u", 62_001, rules), { posts: 0, slow: 0, failures: 0, slowRatio: 0, state: "ok" })
  })

  it("keeps its counts right over many POSTs leaving the window", () => {
    const endpoint = new EndpointWindow()
    for (let i = 0; i < 5_000; i++) {
      endpoint.record(i * 100, i % 10 === 0, false)
      endpoint.stats("u", i * 100, rules)
    }
    // The last 600 POSTs (one per 100 ms over 60 s) are in the window, every tenth of them slow.
    assert.deepInclude(endpoint.stats("u", 4_999 * 100, rules), { posts: 600, slow: 60, state: "delayed" })
  })
})
