/**
 * The decryption pipeline's loops (dispatchers and publisher) go on with what is already queued in the same turn of the
 * event loop. Counted in turns of a scheduler the test runs by hand (each turn runs what the fibers scheduled before
 * it, as `setImmediate` does): with many tenants of one item per POST, one chunk per turn and loop was slower than
 * the POSTs came (docs/performance.md, "tenants-50: one POST per turn").
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, PubSub, Scheduler, Scope, Stream } from "effect"
import type { GraphPresence } from "../../src/domain/Presence.ts"
import { DecryptPool } from "../../src/graph/notifications/crypto/DecryptPool.ts"
import { ValidationTokens } from "../../src/graph/notifications/crypto/ValidationTokens.ts"
import { decryptBatch, makeDecryption, type PushedPresence } from "../../src/graph/notifications/Decryption.ts"
import type { BatchItem } from "../../src/graph/notifications/Intake.ts"
import type { EncryptedContent } from "../../src/graph/notifications/Notifications.ts"
import { decryptionWithPool, inboxWithPool } from "./inboxes.ts"
import { richBatchItem, subscription } from "./richItems.ts"

/** A scheduler whose turns the test runs: `turn()` runs the tasks scheduled so far; those they schedule wait for the next. */
const manualScheduler = () => {
  let pending: Array<() => void> = []
  const scheduler = new Scheduler.MixedScheduler("async", (task) => {
    pending.push(task)
    return () => {
      pending = pending.filter((t) => t !== task)
    }
  })
  const turn = () => {
    const now = pending
    pending = []
    for (const task of now) task()
  }
  return { scheduler, turn }
}

const presence = (id: string): GraphPresence => ({ id, availability: "Busy", activity: "Busy" })

const richItem = (id: string): BatchItem => richBatchItem(presence(id))

const plaintexts = (items: ReadonlyArray<EncryptedContent>) => items.map((content) => ({ ok: true as const, plaintext: content.data }))

/** A pool that answers at once, with each item's data as its plaintext. */
const pool = DecryptPool.of({
  decrypt: (items) => Effect.succeed(plaintexts(items)),
  post: (items, answered) => (answered(plaintexts(items)), () => {}),
  reloadKeys: Effect.void,
  size: 1,
  itemMicros: () => 350,
  pendingItems: () => 0
})

/** Runs `program` on the scheduler, a turn at a time, until it ends (at most 1,000 turns): its result and the turns taken. */
const runInTurns = <A>(program: Effect.Effect<A>) => {
  const { scheduler, turn } = manualScheduler()
  const fiber = Effect.runFork(program, { scheduler })
  let turns = 0
  while (fiber.pollUnsafe() === undefined && turns < 1_000) {
    turn()
    turns++
  }
  const exit = fiber.pollUnsafe()
  return { value: exit !== undefined && Exit.isSuccess(exit) ? exit.value : exit, turns }
}

describe("the decryption pipeline's pace (turns of the event loop)", () => {
  it("30 POSTs of one item each, queued together, are published in order within a few turns, not one per turn", () => {
    const users = Array.from({ length: 30 }, (_, i) => `u-${i}`)
    const program = Effect.gen(function*() {
      const presences = yield* PubSub.unbounded<PushedPresence>()
      const published = yield* PubSub.subscribe(presences)
      const decryption = yield* makeDecryption(presences, 200, () => Effect.void).pipe(
        Effect.provideService(DecryptPool, pool),
        Effect.provideService(ValidationTokens, ValidationTokens.of({ verify: () => Effect.void, remembered: () => true, prime: Effect.void }))
      )
      // Received now: within the flood gate's budget, so every item is decrypted.
      const receivedAt = yield* Clock.currentTimeMillis
      for (const id of users) {
        const rich = [richItem(id)]
        yield* decryptBatch(decryption, { items: rich, validationTokens: [], receivedAt, span: undefined }, rich)
      }
      const ids: Array<string> = []
      while (ids.length < users.length) ids.push(...(yield* PubSub.takeAll(published)).map((p) => p.userId))
      return ids
    }).pipe(Effect.scoped)
    const { value, turns } = runInTurns(program)
    assert.isDefined(value)
    assert.deepStrictEqual(value, users)
    // One POST per turn would take 30 turns and more; the hand-offs between the fibers take a few.
    assert.isAtMost(turns, 10, `${turns} turns`)
  })
})

describe("the decrypt workers' room, in items", () => {
  it("with one worker, 20 POSTs of one item each and two chunks of 50 go to the workers before any answer; the third chunk waits for room; stopping cancels the 22 requests", () => {
    let cancelled = 0
    const program = Effect.gen(function*() {
      const handed: Array<string> = []
      const allRoomTaken = yield* Deferred.make<void>()
      const waiting = DecryptPool.of({
        ...pool,
        post: (items) => {
          handed.push(...items.map((content) => (JSON.parse(content.data) as GraphPresence).id))
          if (handed.length === 120) Deferred.doneUnsafe(allRoomTaken, Effect.void)
          // Never answered: the room stays taken, until the pipeline stops and cancels its requests.
          return () => void cancelled++
        }
      })
      const presences = yield* PubSub.unbounded<PushedPresence>()
      const decryption = yield* decryptionWithPool(presences, waiting)
      const receivedAt = yield* Clock.currentTimeMillis
      const post = (ids: ReadonlyArray<string>) => {
        const rich = ids.map(richItem)
        return decryptBatch(decryption, { items: rich, validationTokens: [], receivedAt, span: undefined }, rich)
      }
      // 20 POSTs of one item, then 150 items in chunks of 50: 120 fit the room of one worker (150), the last chunk waits.
      const ones = Array.from({ length: 20 }, (_, i) => `one-${i}`)
      const many = Array.from({ length: 150 }, (_, i) => `many-${i}`)
      for (const id of ones) yield* post([id])
      yield* post(many)
      yield* Deferred.await(allRoomTaken)
      return { handed: [...handed], withWorkers: decryption.gate.withWorkers, held: decryption.holding.size }
    }).pipe(Effect.scoped)
    const { value } = runInTurns(program)
    assert.deepStrictEqual(value, { handed: Array.from({ length: 20 }, (_, i) => `one-${i}`).concat(Array.from({ length: 100 }, (_, i) => `many-${i}`)), withWorkers: 120, held: 1 })
    assert.strictEqual(cancelled, 22)
  })
})

describe("a chunk with nothing held before it", () => {
  it("goes to the workers from the caller's fiber, without a turn; once one is held, the next ones wait behind it, in order", () => {
    const program = Effect.gen(function*() {
      const handed: Array<string> = []
      const answers: Array<() => void> = []
      const waiting = DecryptPool.of({
        ...pool,
        post: (items, answered) => {
          handed.push(...items.map((content) => (JSON.parse(content.data) as GraphPresence).id))
          answers.push(() => answered(plaintexts(items)))
          return () => {}
        }
      })
      const presences = yield* PubSub.unbounded<PushedPresence>()
      const published = yield* PubSub.subscribe(presences)
      const decryption = yield* decryptionWithPool(presences, waiting)
      const receivedAt = yield* Clock.currentTimeMillis
      const post = (ids: ReadonlyArray<string>) => {
        const rich = ids.map(richItem)
        return decryptBatch(decryption, { items: rich, validationTokens: [], receivedAt, span: undefined }, rich)
      }
      // No turn has run: the dispatcher fiber has not started, yet the chunk is with the workers.
      yield* post(["first"])
      const atOnce = [...handed]
      // 149 items fill the room of one worker (150): the next chunk is held, and so is the one after it, although the
      // answer to "first" gives room back before the dispatcher's turn.
      yield* post(Array.from({ length: 149 }, (_, i) => `fill-${i}`))
      yield* post(["held"])
      answers.shift()!()
      yield* post(["after"])
      const beforeTurn = { handed: handed.length, held: decryption.holding.size }
      // Every answer gives room back: the held chunks go in their order.
      while (handed.length < 152) {
        for (const answer of answers.splice(0, answers.length)) answer()
        yield* Effect.yieldNow
      }
      for (const answer of answers.splice(0, answers.length)) answer()
      const ids: Array<string> = []
      while (ids.length < 152) ids.push(...(yield* PubSub.takeAll(published)).map((p) => p.userId))
      return { atOnce, beforeTurn, order: handed.filter((id) => !id.startsWith("fill-")), published: ids.filter((id) => !id.startsWith("fill-")) }
    }).pipe(Effect.scoped)
    const { value } = runInTurns(program)
    assert.deepStrictEqual(value, {
      atOnce: ["first"],
      beforeTurn: { handed: 150, held: 2 },
      order: ["first", "held", "after"],
      published: ["first", "held", "after"]
    })
  })
})

describe("the inbox's processor's pace (turns of the event loop)", () => {
  it("30 POSTs of one item each, accepted together, all reach the decrypt workers within a few turns, in order", () => {
    const users = Array.from({ length: 30 }, (_, i) => `u-${i}`)
    const program = Effect.gen(function*() {
      const handed: Array<string> = []
      const allHanded = yield* Deferred.make<void>()
      const recording = DecryptPool.of({
        ...pool,
        post: (items, answered) => {
          handed.push(...items.map((content) => (JSON.parse(content.data) as GraphPresence).id))
          if (handed.length >= users.length) Deferred.doneUnsafe(allHanded, Effect.void)
          return pool.post(items, answered)
        }
      })
      const inbox = yield* inboxWithPool(recording)
      yield* inbox.register(subscription)
      for (const id of users) {
        const { item } = richItem(id)
        yield* inbox.acceptNotifications({ value: [{ ...item, clientState: "state" }] })
      }
      yield* Deferred.await(allHanded)
      return handed
    }).pipe(Effect.scoped)
    const { value, turns } = runInTurns(program)
    assert.deepStrictEqual(value, users)
    // One POST per turn would take 30 turns and more.
    assert.isAtMost(turns, 10, `${turns} turns`)
  })
})

describe("the inbox's presence consumers", () => {
  it("get each published chunk in the publisher's fiber, in order, until their scope closes", () => {
    const program = Effect.gen(function*() {
      const inbox = yield* inboxWithPool(pool)
      yield* inbox.register(subscription)
      const consumed: Array<ReadonlyArray<string>> = []
      const streamed = yield* Deferred.make<ReadonlyArray<string>>()
      const seen: Array<string> = []
      yield* inbox.presences.pipe(
        Stream.runForEach((p) => Effect.suspend(() => (seen.push(p.userId) === 4 ? Deferred.succeed(streamed, seen) : Effect.void))),
        Effect.forkScoped
      )
      // The stream subscribes once its fiber runs.
      for (let i = 0; i < 3; i++) yield* Effect.yieldNow
      const accept = (ids: ReadonlyArray<string>) =>
        inbox.acceptNotifications({ value: ids.map((id) => ({ ...richItem(id).item, clientState: "state" })) })
      const scope = yield* Scope.make()
      yield* inbox.consumePresences((presences) => Effect.sync(() => void consumed.push(presences.map((p) => p.userId)))).pipe(Scope.provide(scope))
      yield* accept(["a", "b"])
      yield* accept(["c"])
      while (consumed.length < 2) yield* Effect.yieldNow
      yield* Scope.close(scope, Exit.void)
      yield* accept(["d"])
      // The stream sees every presence, the consumer only those published while its scope was open.
      return { consumed, streamed: yield* Deferred.await(streamed) }
    }).pipe(Effect.scoped)
    const { value } = runInTurns(program)
    assert.deepStrictEqual(value, { consumed: [["a", "b"], ["c"]], streamed: ["a", "b", "c", "d"] })
  })
})
