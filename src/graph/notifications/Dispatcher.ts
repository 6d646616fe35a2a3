/**
 * The decryption pipeline's dispatcher (Decryption.ts): held chunks go to the workers in arrival order as their room
 * allows, are reviewed against the flood gate's budget while they wait (FloodGate.ts), and the workers' answers give
 * the room back and complete each chunk for the publisher, without a fiber per chunk.
 */
import { Clock, Deferred, Effect, Exit, Queue, type Scope, type Tracer } from "effect"
import type { Answered, DecryptPool } from "./crypto/DecryptPool.ts"
import type { DecryptResult } from "./crypto/RichCrypto.ts"
import type { ValidationTokens } from "./crypto/ValidationTokens.ts"
import { FloodGate, type FloodSplit, minItemsPerRead, splitWhenWorthReading } from "./FloodGate.ts"
import type { BatchItem } from "./Intake.ts"
import { type EncryptedContent, notificationUserId } from "./Notifications.ts"
import { endSpan } from "../../observability/ChangeTrace.ts"
import { recordStage } from "./Stages.ts"

/** The items of a chunk that went to the workers, with their results (those read instead are not among them). */
export interface Decrypted {
  readonly items: ReadonlyArray<BatchItem>
  readonly results: ReadonlyArray<DecryptResult>
}

export interface DecryptingChunk {
  /** Its items still to decrypt (fewer once some were read instead while it was held). */
  items: ReadonlyArray<BatchItem>
  readonly decrypted: Deferred.Deferred<Decrypted>
  /** Whether the batch's validation tokens held (shared by the batch's chunks; rejections already counted). */
  readonly verified: Effect.Effect<boolean>
  readonly receivedAt: number
  /** Clock milliseconds when the processor took its batch, handed it to the workers (-1: never) and their answer came (Stages.ts). */
  readonly takenAt: number
  handedAt: number
  answeredAt: number
  readonly span: Tracer.Span | undefined
  /** The room its items took with the workers, given back by their answer; the request's cancel while they have it. */
  room: number
  cancel: (() => void) | undefined
  /** The defect of a crashed worker that failed its items (logged by the publisher). */
  crash?: unknown
}

/**
 * The workers' room in items (`itemsPerWorker` each): taken by the dispatcher, given back by the workers' answers,
 * which wake the dispatcher when it waits for room, or to review the held chunks (`reviewDue`).
 */
export interface Room {
  free: number
  wake: ((resume: Effect.Effect<void>) => void) | undefined
  reviewDue: boolean
  /** Chunks with the workers, cancelled when the pipeline's scope closes. */
  readonly out: Set<DecryptingChunk>
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
  readonly room: Room
  readonly clock: Clock.Clock
  /** The pipeline's scope: a batch's token check runs in it, whichever fiber took the batch (NotificationsInbox.ts). */
  readonly scope: Scope.Scope
}

/**
 * Held chunks go to the workers in arrival order once there is room for their items (`itemsPerWorker`); a chunk waiting
 * for room is still held (reviewed, and read instead where it no longer fits the budget). The dispatcher posts it and
 * goes on: the workers' answer (`answered`) gives the room back and completes the chunk, without a fiber per chunk.
 */
export const handOver = Effect.fnUntraced(function*(decryption: Decryption, chunk: DecryptingChunk) {
  const room = decryption.room
  for (;;) {
    if (room.reviewDue) {
      room.reviewDue = false
      yield* reviewHeld(decryption)
    }
    chunk.room = Math.max(1, chunk.items.length)
    if (room.free >= chunk.room) break
    yield* Effect.callback<void>((resume) => {
      room.wake = resume
    })
  }
  room.free -= chunk.room
  yield* dispatchChunk(decryption, chunk)
})

/**
 * A new chunk straight to the workers, when nothing is held before it (the held chunks, and the one the dispatcher
 * holds while it waits for room, are all in `holding`), no review is due and its items fit the room: the order and the
 * room are the dispatcher's, without its turn. False when it is to be held.
 */
export const dispatchNow = (decryption: Decryption, chunk: DecryptingChunk): Effect.Effect<boolean> =>
  Effect.suspend(() => {
    const room = decryption.room
    const needed = Math.max(1, chunk.items.length)
    if (decryption.holding.size > 0 || room.reviewDue || room.free < needed) return Effect.succeed(false)
    chunk.room = needed
    room.free -= needed
    return Effect.as(dispatchChunk(decryption, chunk), true)
  })

/**
 * A held chunk's turn with the workers: what still comes back within the budget goes to them (FloodGate.ts
 * `dispatchable`), the users of the rest are read instead.
 */
const dispatchChunk = Effect.fnUntraced(function*(decryption: Decryption, chunk: DecryptingChunk) {
  const { gate, pool, room } = decryption
  decryption.holding.delete(chunk)
  const now = yield* Clock.currentTimeMillis
  const waitedMillis = now - chunk.receivedAt
  const taken = takeOverdue(decryption, chunk, gate.at(now).dispatchable(chunk.items.length, waitedMillis), now)
  if (taken.diverted > 0) yield* decryption.divert(taken.read, taken.diverted, waitedMillis)
  const items = chunk.items
  if (items.length === 0) {
    room.free += chunk.room
    yield* endSpan(chunk.span, Exit.void, { "notification.read_instead": chunk.items.length })
    return yield* Deferred.succeed(chunk.decrypted, { items, results: [] })
  }
  gate.dispatched(items.length)
  chunk.handedAt = yield* Clock.currentTimeMillis
  yield* recordStage("held", chunk.takenAt, chunk.handedAt)
  const contents = new Array<EncryptedContent>(items.length)
  for (let i = 0; i < items.length; i++) contents[i] = items[i]!.item.encryptedContent as EncryptedContent
  room.out.add(chunk)
  const cancel = pool.post(contents, answered(decryption, chunk))
  if (room.out.has(chunk)) chunk.cancel = cancel
  // The workers have the content now; what waits for their answer keeps the rest of each item, not the ciphertext.
  chunk.items = withoutContent(items)
})

/** The items without their `encryptedContent`, whose strings are most of a rich item's bytes. */
const withoutContent = (items: ReadonlyArray<BatchItem>): ReadonlyArray<BatchItem> => {
  const out = new Array<BatchItem>(items.length)
  for (let i = 0; i < items.length; i++) {
    const { item, subscription } = items[i]!
    out[i] = { item: { ...item, encryptedContent: null }, subscription }
  }
  return out
}

/**
 * The workers' answer to a chunk, on the event loop: the gate told, the span ended, the room given back, the chunk
 * completed for the publisher, and the dispatcher woken when it waits for room or the held chunks are to be reviewed.
 */
const answered = (decryption: Decryption, chunk: DecryptingChunk): Answered => (results, crash) => {
  const { gate, pool, room, clock } = decryption
  room.out.delete(chunk)
  chunk.cancel = undefined
  gate.finished(chunk.items.length)
  gate.measured(pool.itemMicros())
  chunk.answeredAt = clock.currentTimeMillisUnsafe()
  chunk.crash = crash
  chunk.span?.end(clock.currentTimeNanosUnsafe(), Exit.void)
  room.free += chunk.room
  if (decryption.holding.size > 0 && gate.budgetMillis > 0) room.reviewDue = true
  Deferred.doneUnsafe(chunk.decrypted, Exit.succeed({ items: chunk.items, results }))
  const wake = room.wake
  room.wake = undefined
  wake?.(Effect.void)
}

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
