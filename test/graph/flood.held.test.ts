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
import { richBatchItem } from "./richItems.ts"

const presence = (id: string, activity: "Available" | "Busy" | "Away", sequenceNumber?: string): GraphPresence => ({
  id,
  availability: activity,
  activity,
  ...(sequenceNumber !== undefined ? { sequenceNumber } : {})
})


describe("held chunks read instead (the decryption pipeline, a pool whose answers and speed the test decides)", () => {
  it.effect("when the workers report a slower speed, the held chunks that no longer fit are read at once; the rest are decrypted in order", () =>
    Effect.gen(function*() {
      // One worker, first at the guessed 350 µs per item, a 100 ms budget: 250 items of one POST fit (87.5 ms).
      const answers: Array<Deferred.Deferred<void>> = []
      const handed: Array<ReadonlyArray<string>> = []
      const threeHanded = yield* Deferred.make<void>()
      const readOnce = yield* Deferred.make<void>()
      let itemMicros: number | undefined
      const pool = DecryptPool.of({
        decrypt: (items) =>
          Effect.gen(function*() {
            const answer = yield* Deferred.make<void>()
            answers.push(answer)
            handed.push(items.map((content) => (JSON.parse(content.data) as GraphPresence).id))
            if (handed.length === 3) yield* Deferred.succeed(threeHanded, undefined)
            yield* Deferred.await(answer)
            return items.map((content) => ({ ok: true as const, plaintext: content.data }))
          }),
        reloadKeys: Effect.void,
        size: 1,
        itemMicros: () => itemMicros,
        // The items in the pool: this pipeline's dispatched ones (no other tenant shares it here).
        pendingItems: () => decryption.gate.withWorkers
      })
      const presences = yield* PubSub.unbounded<PushedPresence>()
      const reads: Array<{ users: ReadonlyArray<string>; items: number }> = []
      const decryption: Decryption = yield* makeDecryption(presences, 100, (users, items) =>
        Effect.andThen(Effect.sync(() => void reads.push({ users, items })), Deferred.succeed(readOnce, undefined))).pipe(
        Effect.provideService(DecryptPool, pool),
        Effect.provideService(ValidationTokens, ValidationTokens.of({ verify: () => Effect.void, remembered: () => false }))
      )
      const published = yield* collect(Stream.fromPubSub(presences), 150)
      const users = Array.from({ length: 250 }, (_, i) => `u-${i}`)
      const rich: Array<BatchItem> = users.map((id) => richBatchItem(presence(id, "Busy")))
      assert.strictEqual(decryption.gate.admit(250, 0), 250)
      yield* decryptBatch(decryption, { items: rich, validationTokens: [], receivedAt: 0, span: undefined }, rich)
      // Three chunks of 50 with the worker (150 items per worker), two held.
      yield* Deferred.await(threeHanded)
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
      const answers: Array<Deferred.Deferred<void>> = []
      const handed: Array<ReadonlyArray<string>> = []
      const threeHanded = yield* Deferred.make<void>()
      const pool = DecryptPool.of({
        decrypt: (items) =>
          Effect.gen(function*() {
            const answer = yield* Deferred.make<void>()
            answers.push(answer)
            handed.push(items.map((content) => (JSON.parse(content.data) as GraphPresence).id))
            if (handed.length === 3) yield* Deferred.succeed(threeHanded, undefined)
            if (handed.length <= 3) yield* Deferred.await(answer)
            return items.map((content) => ({ ok: true as const, plaintext: content.data }))
          }),
        reloadKeys: Effect.void,
        size: 1,
        itemMicros: () => 1_000,
        pendingItems: () => decryption.gate.withWorkers
      })
      const presences = yield* PubSub.unbounded<PushedPresence>()
      const reads: Array<number> = []
      const decryption: Decryption = yield* makeDecryption(presences, 100, (_, items) => Effect.sync(() => void reads.push(items))).pipe(
        Effect.provideService(DecryptPool, pool),
        Effect.provideService(ValidationTokens, ValidationTokens.of({ verify: () => Effect.void, remembered: () => true }))
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
      yield* Deferred.await(threeHanded)
      // 5 s later — far past the budget — the worker answers: the 15 held items no longer fit, but are too few to read.
      yield* TestClock.setTime(5_000)
      for (const answer of answers.slice(0, 3)) yield* Deferred.succeed(answer, undefined)
      assert.deepStrictEqual((yield* published).map((p) => p.userId), users)
      assert.deepStrictEqual(reads, [])
      assert.deepStrictEqual(handed.slice(3), [users.slice(150, 155), users.slice(155, 165)])
    }).pipe(Effect.scoped))
})
