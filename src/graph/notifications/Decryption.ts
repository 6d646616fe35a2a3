/**
 * Rich items from the intake's batches to typed presences: each chunk waits its turn for the worker pool (a few chunks
 * at a time are with the workers, the rest held here), is decrypted while its batch's validation tokens are verified,
 * and one publisher fiber takes the chunks in arrival order and publishes each as soon as it is decrypted and its batch
 * verified. With the flood fallback, a held chunk whose items would no longer come back within the latency budget
 * when its turn comes is read instead (FloodGate.ts `dispatchable`). The presences go on in arrival order; which of
 * them is stale is the presence source's decision (graph/presence/PresenceState.ts).
 */
import { Cause, Clock, Deferred, Effect, Fiber, PubSub, Queue, type Tracer } from "effect"
import { notificationsReceivedOf } from "../../domain/Metrics.ts"
import type { GraphPresence } from "../../domain/Presence.ts"
import { checkDecrypted } from "./DecryptedCheck.ts"
import { DecryptPool, maxChunk } from "./crypto/DecryptPool.ts"
import { ValidationTokens } from "./crypto/ValidationTokens.ts"
import { type DecryptingChunk, type Decrypted, type Decryption, type Divert, dispatchNow, handOver } from "./Dispatcher.ts"
import { FloodGate } from "./FloodGate.ts"
import type { Batch, BatchItem } from "./Intake.ts"
import { countRejected, logRejected, makeRejections } from "./Rejections.ts"
import { recordStage } from "./Stages.ts"

export type { Decryption, Divert } from "./Dispatcher.ts"

export interface PushedPresence {
  readonly userId: string
  readonly presence: GraphPresence
  readonly receivedAt: number
  /** Milliseconds on the Clock when the item came back decrypted. */
  readonly decryptedAt: number
  /** The decryption's span, parent of what follows for this change (one trace per change). */
  readonly span?: Tracer.AnySpan | undefined
}

/** Takes a chunk's presences in the publisher's fiber (NotificationsInbox `consumePresences`). */
export type PresenceConsumer = (presences: ReadonlyArray<PushedPresence>) => Effect.Effect<void>

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
export const makeDecryption = Effect.fnUntraced(function*(
  presences: PubSub.PubSub<PushedPresence>,
  latencyBudgetMillis: number,
  divert: Divert,
  consumers: ReadonlySet<PresenceConsumer> = new Set()
) {
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
    divert,
    room: { free: fallback ? pool.size * itemsPerWorker : chunksInFlight * maxChunk, wake: undefined, reviewDue: false, out: new Set() },
    clock: yield* Clock.Clock,
    scope: yield* Effect.scope
  }
  yield* Effect.addFinalizer(() => Effect.sync(() => decryption.room.out.forEach((chunk) => chunk.cancel?.())))
  yield* Queue.take(decryption.held).pipe(Effect.flatMap((chunk) => handOver(decryption, chunk)), Effect.forever(drainQueued), Effect.forkScoped)
  const pace: Pace = { items: 0 }
  yield* Queue.take(decryption.decrypting).pipe(
    Effect.flatMap((chunk) => publishChunk(chunk, presences, consumers, pace)),
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
  const tenants: Array<string> = []
  for (let i = 0; i < rich.length; i++) if (rich[i]!.item.tenantId !== undefined) tenants.push(rich[i]!.item.tenantId!)
  const takenAt = yield* Clock.currentTimeMillis
  yield* recordStage("intake", batch.receivedAt, takenAt)
  // Tokens verified before (nearly every POST of a tenant's: ValidationTokens.ts) need no fiber of their own.
  const verified = decryption.tokens.remembered(batch.validationTokens, tenants, takenAt)
    ? Effect.succeed(true)
    : Fiber.join(
      yield* decryption.tokens.verify(batch.validationTokens, tenants).pipe(
        Effect.as(true),
        Effect.catch((error) =>
          logRejected("validation_token", error.message).pipe(
            Effect.andThen(rich.length > 1 ? countRejected("validation_token", rich.length - 1) : Effect.void),
            Effect.as(false)
          )
        ),
        // Into the pipeline's scope, not the caller's: the fiber that took the batch may be a POST's, which ends first.
        Effect.forkIn(decryption.scope)
      )
    )
  for (let i = 0; i < rich.length; i += maxChunk) {
    // A POST's items that fit one chunk are that chunk (never changed in place: a split makes a new array).
    const items = rich.length <= maxChunk ? rich : rich.slice(i, i + maxChunk)
    // A batch without a span (no tracing backend, ChangeTrace.ts) starts none.
    const span = batch.span === undefined
      ? undefined
      : yield* Effect.makeSpan("NotificationsInbox.decrypt", { parent: batch.span, attributes: { "notification.items": items.length } })
    decryption.gate.started(items.length)
    const chunk: DecryptingChunk = { items, decrypted: yield* Deferred.make<Decrypted>(), verified, receivedAt: batch.receivedAt, takenAt, handedAt: -1, answeredAt: takenAt, span, room: 0, cancel: undefined }
    // Nothing held before it and room with the workers: it goes to them now, from this fiber (Dispatcher.ts
    // `dispatchNow`), rather than through the held queue and a resume of the dispatcher per one-item POST.
    if (!(yield* dispatchNow(decryption, chunk))) {
      decryption.holding.add(chunk)
      yield* Queue.offer(decryption.held, chunk)
    }
    yield* Queue.offer(decryption.decrypting, chunk)
  }
})

/** Items the publisher has published since it last let the other fibers run. */
interface Pace {
  items: number
}

/**
 * One chunk, once decrypted and verified: checked item by item and published as one array. A bad item is logged and
 * counted, never fails the others, and the good ones travel on together.
 */
const publishChunk = Effect.fnUntraced(function*(
  chunk: DecryptingChunk,
  presences: PubSub.PubSub<PushedPresence>,
  consumers: ReadonlySet<PresenceConsumer>,
  pace: Pace
) {
  const { items, results } = yield* Deferred.await(chunk.decrypted)
  if (chunk.handedAt >= 0) yield* recordStage("decrypt", chunk.handedAt, chunk.answeredAt)
  if (chunk.crash !== undefined) yield* Effect.logError("decryption worker failed; its items are dropped", chunk.crash)
  if (!(yield* chunk.verified) || items.length === 0) return
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
    for (const consume of consumers) yield* consume(accepted)
  }
  // Let the presence source, the flow and the writer run after a full chunk's worth of items, not after each of many
  // tenants' one-POST chunks (a yield waits for the event loop's next turn: one POST per turn is slower than they come).
  pace.items += chunk.items.length
  if (pace.items >= maxChunk) {
    pace.items = 0
    yield* Effect.yieldNow
  }
})
