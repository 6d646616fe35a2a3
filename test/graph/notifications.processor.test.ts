/**
 * The inbox's processor (Processor.ts): a batch that finds it idle with nothing queued is processed in the fiber that
 * accepted it, at once; one that finds it busy is queued and waits its turn, so batches are processed one at a time,
 * in arrival order — also behind a batch taken at once that had to wait.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Queue } from "effect"
import type { GraphPresence } from "../../src/domain/Presence.ts"
import { DecryptPool } from "../../src/graph/notifications/crypto/DecryptPool.ts"
import type { Batch } from "../../src/graph/notifications/Intake.ts"
import { makeProcessor, maxItemsAtOnce } from "../../src/graph/notifications/Processor.ts"
import { inboxWithPool } from "./inboxes.ts"
import { richBatchItem, subscription } from "./richItems.ts"

const batchOf = (name: string): Batch => ({ items: [], validationTokens: [name], receivedAt: 0, span: undefined })

/** The inbox with a pool that records what it is handed (and never answers), and the given flood budget. */
const inboxWith = (floodLatencyBudgetMillis: number, handed: Array<string>) =>
  inboxWithPool(DecryptPool.of({
    decrypt: () => Effect.never,
    post: (items) => {
      handed.push(...items.map((content) => (JSON.parse(content.data) as GraphPresence).id))
      return () => {}
    },
    reloadKeys: Effect.void,
    size: 1,
    itemMicros: () => 350,
    pendingItems: () => 0
  }), floodLatencyBudgetMillis)

const postOf = (id: string) => {
  const { item } = richBatchItem({ id, availability: "Busy", activity: "Busy" })
  return { value: [{ ...item, clientState: "state" }] }
}

describe("the inbox's processor", () => {
  it.effect("a POST that finds the processor idle reaches the decrypt workers before its acceptance returns", () =>
    Effect.gen(function*() {
      const handed: Array<string> = []
      const inbox = yield* inboxWith(200, handed)
      yield* inbox.register(subscription)
      assert.strictEqual(yield* inbox.acceptNotifications(postOf("u-1")), 1)
      const atOnce = [...handed]
      assert.strictEqual(yield* inbox.acceptNotifications(postOf("u-2")), 1)
      assert.deepStrictEqual({ atOnce, then: handed }, { atOnce: ["u-1"], then: ["u-1", "u-2"] })
    }).pipe(Effect.scoped))

  it.effect(`a POST of more than ${maxItemsAtOnce} items is queued for the processor's fiber (its 202 does not wait for it)`, () =>
    Effect.gen(function*() {
      const handed: Array<string> = []
      const inbox = yield* inboxWith(200, handed)
      yield* inbox.register(subscription)
      const ids = Array.from({ length: maxItemsAtOnce + 1 }, (_, i) => `big-${i}`)
      const body = { value: ids.map((id) => ({ ...richBatchItem({ id, availability: "Busy", activity: "Busy" }).item, clientState: "state" })) }
      assert.strictEqual(yield* inbox.acceptNotifications(body), ids.length)
      const atOnce = [...handed]
      while (handed.length < ids.length) yield* Effect.yieldNow
      assert.deepStrictEqual({ atOnce, then: handed }, { atOnce: [], then: ids })
    }).pipe(Effect.scoped))

  it.effect("with the flood fallback off (publishing may wait for room), every POST is queued for the processor's fiber", () =>
    Effect.gen(function*() {
      const handed: Array<string> = []
      const inbox = yield* inboxWith(0, handed)
      yield* inbox.register(subscription)
      assert.strictEqual(yield* inbox.acceptNotifications(postOf("u-1")), 1)
      const atOnce = [...handed]
      while (handed.length < 1) yield* Effect.yieldNow
      assert.deepStrictEqual({ atOnce, then: handed }, { atOnce: [], then: ["u-1"] })
    }).pipe(Effect.scoped))

  it.effect("batches queued while one taken at once waits are processed after it, in arrival order", () =>
    Effect.gen(function*() {
      const queue = yield* Queue.unbounded<Batch>()
      const log: Array<string> = []
      const firstMayEnd = yield* Deferred.make<void>()
      const processor = yield* makeProcessor(queue, (batch) =>
        Effect.gen(function*() {
          const name = batch.validationTokens[0]!
          log.push(`start ${name}`)
          if (name === "a") yield* Deferred.await(firstMayEnd)
          log.push(`end ${name}`)
        }), true)
      const accept = (name: string) =>
        Effect.flatMap(processor.processNow(batchOf(name)), (now) => (now ? Effect.void : Effect.asVoid(Queue.offer(queue, batchOf(name)))))
      const first = yield* Effect.forkChild(accept("a"))
      while (log.length === 0) yield* Effect.yieldNow
      // "a" waits; "b" and "c" find the processor busy and are queued.
      yield* accept("b")
      yield* accept("c")
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow
      const whileWaiting = [...log]
      yield* Deferred.succeed(firstMayEnd, undefined)
      yield* Fiber.join(first)
      while (log.length < 6) yield* Effect.yieldNow
      // Once all is done, the next batch is processed at once again.
      const takenAtOnce = yield* processor.processNow(batchOf("d"))
      assert.deepStrictEqual({ whileWaiting, log, takenAtOnce }, {
        whileWaiting: ["start a"],
        log: ["start a", "end a", "start b", "end b", "start c", "end c", "start d", "end d"],
        takenAtOnce: true
      })
    }).pipe(Effect.scoped))

  it.effect("a batch taken at once is processed to its end even when the POST's fiber is interrupted (its client gone)", () =>
    Effect.gen(function*() {
      const queue = yield* Queue.unbounded<Batch>()
      const log: Array<string> = []
      const mayEnd = yield* Deferred.make<void>()
      const processor = yield* makeProcessor(queue, (batch) =>
        Effect.gen(function*() {
          log.push(`start ${batch.validationTokens[0]}`)
          yield* Deferred.await(mayEnd)
          log.push(`end ${batch.validationTokens[0]}`)
        }), true)
      const post = yield* Effect.forkChild(processor.processNow(batchOf("a")))
      while (log.length === 0) yield* Effect.yieldNow
      const interrupted = yield* Effect.forkChild(Fiber.interrupt(post))
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow
      yield* Deferred.succeed(mayEnd, undefined)
      yield* Fiber.join(interrupted)
      assert.deepStrictEqual(log, ["start a", "end a"])
      assert.isTrue(yield* processor.processNow(batchOf("b")))
    }).pipe(Effect.scoped))
})
