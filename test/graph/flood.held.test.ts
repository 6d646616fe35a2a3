/**
 * The decryption pipeline's held chunks (Decryption.ts, FloodGate.ts) with a decrypt pool whose answers and speed the
 * test decides: which held chunks are read instead when the workers turn slower, and that a few late items are still
 * decrypted. The gate's rules with fixed numbers and the fallback over real sockets are in flood.fallback.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, PubSub, Stream } from "effect"
import { TestClock } from "effect/testing"
import type { GraphPresence } from "../../src/domain/Presence.ts"
import { DecryptPool } from "../../src/graph/notifications/crypto/DecryptPool.ts"
import { ValidationTokens } from "../../src/graph/notifications/crypto/ValidationTokens.ts"
import { decryptBatch, type Decryption, makeDecryption, type PushedPresence } from "../../src/graph/notifications/Decryption.ts"
import type { BatchItem } from "../../src/graph/notifications/Intake.ts"
import { collect } from "../support/streams.ts"
import { inboxWithPool } from "./inboxes.ts"
import { richBatchItem, subscription } from "./richItems.ts"

const presence = (id: string, activity: "Available" | "Busy" | "Away", sequenceNumber?: string): GraphPresence => ({
  id,
  availability: activity,
  activity,
  ...(sequenceNumber !== undefined ? { sequenceNumber } : {})
})

/**
 * A one-worker pool whose chunks each wait for the test's answer (`answers`, in the order handed; `waits` says which
 * do, all by default); `handed` has each chunk's users, `untilHanded(n)` waits until n chunks in all were handed.
 */
const answeredPool = Effect.fnUntraced(function*(options: {
  readonly itemMicros: () => number | undefined
  readonly pendingItems: () => number
  readonly waits?: (chunk: number) => boolean
}) {
  const answers: Array<Deferred.Deferred<void>> = []
  const handed: Array<ReadonlyArray<string>> = []
  let waiting: { readonly count: number; readonly done: Deferred.Deferred<void> } | undefined
  const untilHanded = (count: number) =>
    Effect.gen(function*() {
      const done = yield* Deferred.make<void>()
      waiting = { count, done }
      if (handed.length >= count) yield* Deferred.succeed(done, undefined)
      yield* Deferred.await(done)
    })
  const pool = DecryptPool.of({
    decrypt: () => Effect.die("the pipeline posts its chunks"),
    post: (items, answered) => {
      const answer = Deferred.makeUnsafe<void>()
      answers.push(answer)
      handed.push(items.map((content) => (JSON.parse(content.data) as GraphPresence).id))
      if (waiting !== undefined && handed.length >= waiting.count) Deferred.doneUnsafe(waiting.done, Effect.void)
      const results = items.map((content) => ({ ok: true as const, plaintext: content.data }))
      // The answer comes when the test gives it (as a worker's, on the event loop), or at once.
      if (options.waits?.(handed.length) ?? true) Effect.runFork(Effect.andThen(Deferred.await(answer), Effect.sync(() => answered(results))))
      else answered(results)
      return () => {}
    },
    reloadKeys: Effect.void,
    size: 1,
    itemMicros: options.itemMicros,
    pendingItems: options.pendingItems
  })
  return { pool, answers, handed, untilHanded }
})

describe("held chunks read instead (the decryption pipeline, a pool whose answers and speed the test decides)", () => {
  it.effect("when the workers report a slower speed, the held chunks that no longer fit are read at once; the rest are decrypted in order", () =>
    Effect.gen(function*() {
      // One worker, first at the guessed 350 µs per item, a 100 ms budget: 250 items of one POST fit (87.5 ms).
      const readOnce = yield* Deferred.make<void>()
      let itemMicros: number | undefined
      const { answers, handed, pool, untilHanded } = yield* answeredPool({
        itemMicros: () => itemMicros,
        // The items in the pool: this pipeline's dispatched ones (no other tenant shares it here).
        pendingItems: () => decryption.gate.withWorkers
      })
      const presences = yield* PubSub.unbounded<PushedPresence>()
      const reads: Array<{ users: ReadonlyArray<string>; items: number }> = []
      const decryption: Decryption = yield* makeDecryption(presences, 100, (users, items) =>
        Effect.andThen(Effect.sync(() => void reads.push({ users, items })), Deferred.succeed(readOnce, undefined))).pipe(
        Effect.provideService(DecryptPool, pool),
        Effect.provideService(ValidationTokens, ValidationTokens.of({ verify: () => Effect.void, remembered: () => false, prime: Effect.void }))
      )
      const published = yield* collect(Stream.fromPubSub(presences), 150)
      const users = Array.from({ length: 250 }, (_, i) => `u-${i}`)
      const rich: Array<BatchItem> = users.map((id) => richBatchItem(presence(id, "Busy")))
      assert.strictEqual(decryption.gate.admit(250, 0), 250)
      yield* decryptBatch(decryption, { items: rich, validationTokens: [], receivedAt: 0, span: undefined }, rich)
      // Three chunks of 50 with the worker (150 items per worker), two held.
      yield* untilHanded(3)
      assert.deepStrictEqual(handed, [users.slice(0, 50), users.slice(50, 100), users.slice(100, 150)])
      assert.deepStrictEqual({ pending: decryption.gate.pending, withWorkers: decryption.gate.withWorkers }, { pending: 250, withWorkers: 150 })
      // 50 ms later the first chunk comes back, the worker now at 1,000 µs per item: 50 ms are left, fewer than the 100
      // items still with the worker need. The held 100 are read at once, not when their turn comes.
      yield* TestClock.setTime(50)
      itemMicros = 1_000
      yield* Deferred.succeed(answers[0]!, undefined)
      yield* Deferred.await(readOnce)
      assert.deepStrictEqual(reads, [{ users: users.slice(150), items: 100 }])
      yield* Deferred.succeed(answers[1]!, undefined)
      yield* Deferred.succeed(answers[2]!, undefined)
      assert.deepStrictEqual((yield* published).map((p) => p.userId), users.slice(0, 150))
      assert.deepStrictEqual(reads.length, 1)
      assert.deepStrictEqual(handed.length, 3)
      assert.deepStrictEqual({ pending: decryption.gate.pending, withWorkers: decryption.gate.withWorkers }, { pending: 0, withWorkers: 0 })
    }).pipe(Effect.scoped))
})

describe("a few held items past the budget (the decryption pipeline, a pool whose answers the test decides)", () => {
  it.effect("are decrypted in their turn, not read: a read of so few users costs more than decrypting them", () =>
    Effect.gen(function*() {
      // One worker at a measured 1,000 µs per item, a 100 ms budget.
      const { answers, handed, pool, untilHanded } = yield* answeredPool({
        itemMicros: () => 1_000,
        pendingItems: () => decryption.gate.withWorkers,
        waits: (chunk) => chunk <= 3
      })
      const presences = yield* PubSub.unbounded<PushedPresence>()
      const reads: Array<number> = []
      const decryption: Decryption = yield* makeDecryption(presences, 100, (_, items) => Effect.sync(() => void reads.push(items))).pipe(
        Effect.provideService(DecryptPool, pool),
        Effect.provideService(ValidationTokens, ValidationTokens.of({ verify: () => Effect.void, remembered: () => true, prime: Effect.void }))
      )
      const published = yield* collect(Stream.fromPubSub(presences), 165)
      const batchOf = (ids: ReadonlyArray<string>): ReadonlyArray<BatchItem> => ids.map((id) => richBatchItem(presence(id, "Busy")))
      // Three POSTs of 50 with the worker (its room of 150 items), then one of 5 and one of 10 held.
      const users = Array.from({ length: 165 }, (_, i) => `u-${i}`)
      const posts = [users.slice(0, 50), users.slice(50, 100), users.slice(100, 150), users.slice(150, 155), users.slice(155, 165)]
      for (const ids of posts) {
        const rich = batchOf(ids)
        yield* decryptBatch(decryption, { items: rich, validationTokens: [], receivedAt: 0, span: undefined }, rich)
      }
      yield* untilHanded(3)
      // 5 s later — far past the budget — the worker answers: the 15 held items no longer fit, but are too few to read.
      yield* TestClock.setTime(5_000)
      for (const answer of answers.slice(0, 3)) yield* Deferred.succeed(answer, undefined)
      assert.deepStrictEqual((yield* published).map((p) => p.userId), users)
      assert.deepStrictEqual(reads, [])
      assert.deepStrictEqual(handed.slice(3), [users.slice(150, 155), users.slice(155, 165)])
    }).pipe(Effect.scoped))
})

describe("the flood budget in the pipeline (a pool whose answers the test decides)", () => {
  it.effect("after a read, held chunks are dispatched within the flood budget, until a quiet second has passed", () =>
    Effect.gen(function*() {
      // One worker at a measured 1,000 µs per item, a 200 ms budget: 200 items fit, 50 within the flood budget.
      const { answers, handed, pool, untilHanded } = yield* answeredPool({
        itemMicros: () => 1_000,
        pendingItems: () => decryption.gate.withWorkers
      })
      const presences = yield* PubSub.unbounded<PushedPresence>()
      const reads: Array<{ users: ReadonlyArray<string>; items: number }> = []
      const readDone = [yield* Deferred.make<void>(), yield* Deferred.make<void>(), yield* Deferred.make<void>(), yield* Deferred.make<void>()]
      const decryption: Decryption = yield* makeDecryption(presences, 200, (users, items) =>
        Effect.suspend(() => {
          reads.push({ users, items })
          return Deferred.succeed(readDone[reads.length - 1]!, undefined)
        })).pipe(
        Effect.provideService(DecryptPool, pool),
        Effect.provideService(ValidationTokens, ValidationTokens.of({ verify: () => Effect.void, remembered: () => true, prime: Effect.void }))
      )
      const published = yield* collect(Stream.fromPubSub(presences), 350)
      const users = Array.from({ length: 600 }, (_, i) => `u-${i}`)
      const post = (ids: ReadonlyArray<string>, receivedAt: number) => {
        const rich = ids.map((id) => richBatchItem(presence(id, "Busy")))
        return decryptBatch(decryption, { items: rich, validationTokens: [], receivedAt, span: undefined }, rich)
      }
      // A POST of 300 at 0: three chunks with the worker (its room of 150 items), three held.
      yield* post(users.slice(0, 300), 0)
      yield* untilHanded(3)
      // At 60 ms the first chunk comes back. The held chunks reviewed within the whole budget: 140 ms left hold 140
      // items, 100 are still with the worker, so 40 of the first held chunk fit; the other 110 items are read.
      yield* TestClock.setTime(60)
      yield* Deferred.succeed(answers[0]!, undefined)
      // That read puts the gate on its flood budget: when its turn comes right after, the held chunk's 40 would come
      // back after 60 + (100 + 40) × 1 ms = 200 ms, over the 50 ms of the flood budget — they are read too.
      yield* Deferred.await(readDone[1]!)
      assert.deepStrictEqual(reads, [{ users: users.slice(190, 300), items: 110 }, { users: users.slice(150, 190), items: 40 }])
      assert.strictEqual(decryption.gate.currentBudgetMillis, 50)
      yield* Deferred.succeed(answers[1]!, undefined)
      yield* Deferred.succeed(answers[2]!, undefined)
      // Within the quiet second a POST of 150 at 500 ms keeps to 50 ms: one chunk goes, the other two (100 items) are
      // read, each in its turn.
      yield* TestClock.setTime(500)
      yield* post(users.slice(300, 450), 500)
      yield* untilHanded(4)
      yield* Deferred.await(readDone[3]!)
      assert.deepStrictEqual(handed.slice(3), [users.slice(300, 350)])
      assert.deepStrictEqual(reads.slice(2), [{ users: users.slice(350, 400), items: 50 }, { users: users.slice(400, 450), items: 50 }])
      yield* Deferred.succeed(answers[3]!, undefined)
      // A second after the last read the whole budget is back: a POST of 150 goes to the worker whole.
      yield* TestClock.setTime(1_600)
      assert.strictEqual(decryption.gate.at(1_600).currentBudgetMillis, 200)
      yield* post(users.slice(450, 600), 1_600)
      yield* untilHanded(7)
      for (let i = 4; i < 7; i++) yield* Deferred.succeed(answers[i]!, undefined)
      assert.deepStrictEqual((yield* published).map((p) => p.userId), [...users.slice(0, 150), ...users.slice(300, 350), ...users.slice(450, 600)])
      assert.deepStrictEqual(handed.slice(4), [users.slice(450, 500), users.slice(500, 550), users.slice(550, 600)])
      assert.strictEqual(reads.length, 4)
    }).pipe(Effect.scoped))
})

describe("the flood budget from a read at intake (the inbox, a pool whose answers the test decides)", () => {
  it.effect("a POST read in part at intake puts the held chunks on the flood budget", () =>
    Effect.gen(function*() {
      // One worker, the default budget of 200 ms (50 ms in a flood). Until a chunk comes back the gate reckons with
      // the guessed 350 µs per item; the worker then reports 1,000.
      const { answers, pool, untilHanded } = yield* answeredPool({ itemMicros: () => 1_000, pendingItems: () => 0 })
      const inbox = yield* inboxWithPool(pool)
      yield* inbox.register(subscription)
      const reads = yield* collect(inbox.refetch, 2)
      // A POST of 600 at 0: 571 fit the budget at 350 µs, the users of the last 29 are read. 150 go to the worker,
      // 421 are held.
      const users = Array.from({ length: 600 }, (_, i) => `u-${i}`)
      yield* inbox.acceptNotifications({ value: users.map((id) => ({ ...richBatchItem(presence(id, "Busy")).item, clientState: "state" })) })
      yield* untilHanded(3)
      // At 10 ms the first chunk comes back at 1,000 µs per item. Within the whole budget 90 held items would still
      // fit (190 ms left, 100 items ahead); the read at intake put the gate on its flood budget (40 ms left, fewer than
      // the 100 ahead): every held item is read now.
      yield* TestClock.setTime(10)
      yield* Deferred.succeed(answers[0]!, undefined)
      assert.deepStrictEqual(yield* reads, [users.slice(571), users.slice(150, 571)])
    }).pipe(Effect.scoped))
})
