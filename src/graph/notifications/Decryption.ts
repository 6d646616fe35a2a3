/**
 * Rich items from the intake's batches to typed presences: each chunk waits its turn for the worker pool (a few chunks
 * at a time are with the workers, the rest held here), is decrypted while its batch's validation tokens are verified,
 * and one publisher fiber takes the chunks in arrival order and publishes each as soon as it is decrypted and its batch
 * verified. With the flood fallback, a held chunk whose items would no longer come back within the latency budget
 * when its turn comes is read instead (FloodGate.ts `dispatchable`). The presences go on in arrival order; which of
 * them is stale is the presence source's decision (graph/presence/PresenceState.ts).
 */
import { Cause, Clock, Deferred, Effect, Exit, Fiber, PubSub, Queue, Semaphore, type Tracer } from "effect"
import { notificationsReceivedOf } from "../../domain/Metrics.ts"
import type { GraphPresence } from "../../domain/Presence.ts"
import { checkDecrypted } from "./DecryptedCheck.ts"
import { DecryptPool, maxChunk } from "./crypto/DecryptPool.ts"
import { FloodGate, type FloodSplit, minItemsPerRead, splitWhenWorthReading } from "./FloodGate.ts"
import type { DecryptResult } from "./crypto/RichCrypto.ts"
import { ValidationTokens } from "./crypto/ValidationTokens.ts"
import type { Batch, BatchItem } from "./Intake.ts"
import { type EncryptedContent, notificationUserId } from "./Notifications.ts"
import { endSpan } from "../../observability/ChangeTrace.ts"
import { countRejected, logRejected, makeRejections } from "./Rejections.ts"
import { recordStage } from "./Stages.ts"

export interface PushedPresence {
  readonly userId: string
  readonly presence: GraphPresence
  readonly receivedAt: number
  /** Milliseconds on the Clock when the item came back decrypted. */
  readonly decryptedAt: number
  /** The decryption's span, parent of what follows for this change (one trace per change). */
  readonly span?: Tracer.AnySpan | undefined
}

/** The counter of accepted presence items, each tenant's series made once (it is updated per chunk of a burst). */
export const presencesReceived = notificationsReceivedOf("presence")

/** Without the flood fallback: chunks with the pool and not yet published (the processor waits beyond it). */
const chunksInFlight = 16

/**
 * With the flood fallback: items with the workers at once, per worker (three full chunks, ≈ 50–100 ms of work), which
 * keeps them busy across the main thread's stalls in a flood; every chunk beyond waits here, where it can still be
 * read instead when the workers turn out slower than the intake decision assumed. Counted in items, not chunks: with
 * many tenants a chunk is one POST of one or two items, and three of them per tenant at a time, each waiting a turn
 * of the event loop for its answer, held the items back (docs/performance.md, "tenants-50: one POST per turn").
 */
export const itemsPerWorker = 3 * maxChunk

/** The items of a chunk that went to the workers, with their results (those read instead are not among them). */
interface Decrypted {
  readonly items: ReadonlyArray<BatchItem>
  readonly results: ReadonlyArray<DecryptResult>
}

interface DecryptingChunk {
  /** Its items still to decrypt (fewer once some were read instead while it was held). */
  items: ReadonlyArray<BatchItem>
  readonly decrypted: Deferred.Deferred<Decrypted>
  /** Whether the batch's validation tokens held (shared by the batch's chunks; rejections already counted). */
  readonly verified: Effect.Effect<boolean>
  readonly receivedAt: number
  /** Clock milliseconds when the processor took its batch, and when the workers' answer came (Stages.ts). */
  readonly takenAt: number
  answeredAt: number
  readonly span: Tracer.Span | undefined
}

/** Reads these users instead of decrypting `items` of their rich notifications (the flood fallback), `waitedMillis` after their POST. */
export type Divert = (userIds: ReadonlyArray<string>, items: number, waitedMillis: number) => Effect.Effect<void>

export interface Decryption {
  readonly pool: DecryptPool["Service"]
  readonly tokens: ValidationTokens["Service"]
  /** Chunks waiting for their turn with the workers, in arrival order: the dispatchers' queue, and a view to review. */
  readonly held: Queue.Queue<DecryptingChunk>
  readonly holding: Set<DecryptingChunk>
  /** Chunks in arrival order, for the publisher. */
  readonly decrypting: Queue.Queue<DecryptingChunk>
  /** The backlog in the pool and its drain rate: whether a new item still fits the latency budget. */
  readonly gate: FloodGate
  readonly divert: Divert
}

/**
 * The loops of the pipeline (here and the inbox's processor) go on with what is queued in the same turn of the event
 * loop: `Effect.forever` otherwise yields after every round, and a yield waits for the next turn, so that each
 * tenant's processor, dispatchers and publisher took one POST per turn — with many tenants of one item per POST, slower
 * than the POSTs came (docs/performance.md, "tenants-50: one POST per turn"). A fiber still yields after its operation
 * budget, and `publishChunk` after a full chunk's worth of items.
 */
export const drainQueued = { disableYield: true } as const

/** One item on one worker before any is measured: an RSA-2048 unwrap (≈ 0.3 ms here) and the rest of the item. */
const initialMicrosPerItem = 350

/**
 * The pipeline, with its dispatcher and publisher fibers forked into the current scope. `latencyBudgetMillis` (0 = off)
 * is the longest a rich item may expect to wait for decryption before its user's presence is read instead (`divert`).
 */
export const makeDecryption = Effect.fnUntraced(function*(presences: PubSub.PubSub<PushedPresence>, latencyBudgetMillis: number, divert: Divert) {
  const pool = yield* DecryptPool
  const fallback = latencyBudgetMillis > 0
  const decryption: Decryption = {
    pool,
    tokens: yield* ValidationTokens,
    held: yield* Queue.unbounded<DecryptingChunk>(),
    holding: new Set(),
    // With the fallback on, the gate bounds the backlog: the processor must never wait here, or the POSTs behind it
    // would wait unseen by the gate, neither decrypted nor read.
    decrypting: yield* (fallback ? Queue.unbounded<DecryptingChunk>() : Queue.bounded<DecryptingChunk>(chunksInFlight)),
    gate: new FloodGate({ latencyBudgetMillis, workers: pool.size, initialMicrosPerItem }),
    divert
  }
  const room = yield* Semaphore.make(fallback ? pool.size * itemsPerWorker : chunksInFlight * maxChunk)
  yield* Queue.take(decryption.held).pipe(Effect.flatMap((chunk) => handOver(decryption, room, chunk)), Effect.forever(drainQueued), Effect.forkScoped)
  const pace: Pace = { items: 0 }
  yield* Queue.take(decryption.decrypting).pipe(
    Effect.flatMap((chunk) => publishChunk(chunk, presences, pace)),
    // Stopping (the scope closes while a chunk is awaited) is no failure to report.
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause) ? Effect.interrupt : Effect.logError("publishing decrypted notifications failed", cause)
    ),
    Effect.forever(drainQueued),
    Effect.forkScoped
  )
  return decryption
})

/**
 * Queues a batch's rich items for the pool chunk by chunk, without waiting: the batch's validation tokens are verified
 * meanwhile, and the processor goes on with the next batch. Nothing is published before its batch's tokens are
 * verified; a batch that fails is dropped whole (its items were decrypted for nothing, which only a sender that knows
 * a subscription's clientState can cause).
 */
export const decryptBatch = Effect.fnUntraced(function*(decryption: Decryption, batch: Batch, rich: ReadonlyArray<BatchItem>) {
  if (rich.length === 0) return
  const tenants = rich.flatMap(({ item }) => (item.tenantId === undefined ? [] : [item.tenantId]))
  const takenAt = yield* Clock.currentTimeMillis
  yield* recordStage("intake", batch.receivedAt, takenAt)
  // Tokens verified before (nearly every POST of a tenant's: ValidationTokens.ts) need no fiber of their own.
  const verified = decryption.tokens.remembered(batch.validationTokens, tenants, takenAt)
    ? Effect.succeed(true)
    : Fiber.join(
      yield* Effect.forkChild(decryption.tokens.verify(batch.validationTokens, tenants).pipe(
        Effect.as(true),
        Effect.catch((error) =>
          logRejected("validation_token", error.message).pipe(
            Effect.andThen(rich.length > 1 ? countRejected("validation_token", rich.length - 1) : Effect.void),
            Effect.as(false)
          )
        )
      ))
    )
  for (let i = 0; i < rich.length; i += maxChunk) {
    const items = rich.slice(i, i + maxChunk)
    // A batch without a span (no tracing backend, ChangeTrace.ts) starts none.
    const span = batch.span === undefined
      ? undefined
      : yield* Effect.makeSpan("NotificationsInbox.decrypt", { parent: batch.span, attributes: { "notification.items": items.length } })
    decryption.gate.started(items.length)
    const chunk: DecryptingChunk = { items, decrypted: yield* Deferred.make<Decrypted>(), verified, receivedAt: batch.receivedAt, takenAt, answeredAt: takenAt, span }
    decryption.holding.add(chunk)
    yield* Queue.offer(decryption.held, chunk)
    yield* Queue.offer(decryption.decrypting, chunk)
  }
})

/** Items the publisher has published since it last let the other fibers run. */
interface Pace {
  items: number
}

/**
 * Held chunks go to the workers in arrival order once there is room for their items (`itemsPerWorker`); a chunk waiting
 * for room is still held (reviewed, and read instead where it no longer fits the budget). Its dispatch runs on its own,
 * giving the room back when the workers answered.
 */
const handOver = Effect.fnUntraced(function*(decryption: Decryption, room: Semaphore.Semaphore, chunk: DecryptingChunk) {
  const items = Math.max(1, chunk.items.length)
  yield* room.take(items)
  // Started at once: the chunk is posted within this turn of the event loop, its answer awaited on its own.
  yield* Effect.forkChild(Effect.ensuring(dispatchChunk(decryption, chunk), room.release(items)), { startImmediately: true })
})

/**
 * A held chunk's turn with the workers: what still comes back within the budget goes to them (FloodGate.ts
 * `dispatchable`), the users of the rest are read instead. Returns once the workers answered.
 */
const dispatchChunk = Effect.fnUntraced(function*(decryption: Decryption, chunk: DecryptingChunk) {
  const { gate, pool } = decryption
  decryption.holding.delete(chunk)
  const now = yield* Clock.currentTimeMillis
  const waitedMillis = now - chunk.receivedAt
  const taken = takeOverdue(decryption, chunk, gate.at(now).dispatchable(chunk.items.length, waitedMillis), now)
  if (taken.diverted > 0) yield* decryption.divert(taken.read, taken.diverted, waitedMillis)
  const items = chunk.items
  if (items.length === 0) {
    yield* endSpan(chunk.span, Exit.void, { "notification.read_instead": chunk.items.length })
    return yield* Deferred.succeed(chunk.decrypted, { items, results: [] })
  }
  gate.dispatched(items.length)
  const handedAt = yield* Clock.currentTimeMillis
  yield* recordStage("held", chunk.takenAt, handedAt)
  const results = yield* pool.decrypt(items.map(({ item }) => item.encryptedContent as EncryptedContent)).pipe(
    (decrypt) => (chunk.span === undefined ? decrypt : Effect.withParentSpan(decrypt, chunk.span)),
    Effect.onExit((exit) =>
      Effect.andThen(
        Effect.sync(() => {
          gate.finished(items.length)
          gate.measured(pool.itemMicros())
        }),
        endSpan(chunk.span, exit)
      )
    ),
    Effect.exit
  )
  chunk.answeredAt = yield* Clock.currentTimeMillis
  yield* recordStage("decrypt", handedAt, chunk.answeredAt)
  yield* Deferred.done(chunk.decrypted, Exit.map(results, (decrypted) => ({ items, results: decrypted })))
  yield* reviewHeld(decryption)
})

type Overdue = Omit<FloodSplit<unknown>, "decrypt">

/**
 * Takes a held chunk's items beyond the first `fit` out of it (and admitted ones of users read anyway: FloodGate.ts
 * `splitFlood`) when that spares at least `minimum` items (FloodGate.ts `splitWhenWorthReading`); returns the users to
 * read instead and how many items that spares. A read at `now` keeps the gate at its flood budget (FloodGate.ts).
 */
const takeOverdue = (decryption: Decryption, chunk: DecryptingChunk, fit: number, now: number, minimum = minItemsPerRead): Overdue => {
  if (fit >= chunk.items.length) return { read: [], diverted: 0 }
  const split = splitWhenWorthReading(chunk.items, fit, (entry) => notificationUserId(entry.item), minimum)
  if (split.diverted === 0) return split
  decryption.gate.withdrawn(split.diverted)
  decryption.gate.divertedAt(now)
  chunk.items = split.decrypt
  return split
}

/**
 * After the workers reported their speed: the held chunks checked again, in order (FloodGate.ts `reviewHeld`); the
 * users of what would no longer come back within the budget are read now (one request's worth together) rather than
 * when its turn comes — when they are at least `minItemsPerRead` items together (fewer are decrypted in their turn).
 */
const reviewHeld = Effect.fnUntraced(function*(decryption: Decryption) {
  if (decryption.holding.size === 0 || decryption.gate.budgetMillis <= 0) return
  const now = yield* Clock.currentTimeMillis
  const held = [...decryption.holding]
  const fits = decryption.gate.at(now).reviewHeld(held.map((chunk) => ({ items: chunk.items.length, waitedMillis: now - chunk.receivedAt })))
  let overdue = 0
  for (let i = 0; i < held.length; i++) overdue += held[i]!.items.length - fits[i]!
  if (overdue < minItemsPerRead) return
  const read: Array<string> = []
  let diverted = 0
  let oldest = now
  for (let i = 0; i < held.length; i++) {
    // Together they are worth a read: each chunk gives up what is overdue in it, however few.
    const taken = takeOverdue(decryption, held[i]!, fits[i]!, now, 1)
    if (taken.diverted === 0) continue
    read.push(...taken.read)
    diverted += taken.diverted
    oldest = Math.min(oldest, held[i]!.receivedAt)
  }
  if (diverted > 0) yield* decryption.divert(read, diverted, now - oldest)
})

/**
 * One chunk, once decrypted and verified: checked item by item and published as one array. A bad item is logged and
 * counted, never fails the others, and the good ones travel on together.
 */
const publishChunk = Effect.fnUntraced(function*(chunk: DecryptingChunk, presences: PubSub.PubSub<PushedPresence>, pace: Pace) {
  if (!(yield* chunk.verified)) return
  const { items, results } = yield* Deferred.await(chunk.decrypted)
  if (items.length === 0) return
  const decryptedAt = yield* Clock.currentTimeMillis
  yield* recordStage("publish", chunk.answeredAt, decryptedAt)
  const accepted: Array<PushedPresence> = []
  const rejections = makeRejections()
  for (let i = 0; i < items.length; i++) {
    const checked = checkDecrypted(items[i]!.item, results[i]!)
    if (checked.ok) {
      accepted.push({ userId: checked.presence.id, presence: checked.presence, receivedAt: chunk.receivedAt, decryptedAt, span: chunk.span })
      continue
    }
    const { ok: _, reason, message, ...annotations } = checked
    rejections.add(reason, message, annotations)
  }
  yield* rejections.report(items.length)
  if (accepted.length > 0) {
    yield* presencesReceived.update(accepted.length)
    yield* PubSub.publishAll(presences, accepted)
  }
  // Let the presence source, the flow and the writer run after a full chunk's worth of items, not after each of many
  // tenants' one-POST chunks (a yield waits for the event loop's next turn: one POST per turn is slower than they come).
  pace.items += chunk.items.length
  if (pace.items >= maxChunk) {
    pace.items = 0
    yield* Effect.yieldNow
  }
})
