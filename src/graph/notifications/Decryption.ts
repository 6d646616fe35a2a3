/**
 * Rich items from the intake's batches to typed presences: each chunk is decrypted in the worker pool while its
 * batch's validation tokens are verified, and one publisher fiber takes the chunks in arrival order and publishes each
 * as soon as it is decrypted and its batch verified. The presences go on in arrival order; which of them is stale is
 * the presence source's decision (graph/presence/PresenceState.ts).
 */
import { Clock, Effect, Fiber, Metric, PubSub, Queue, Result, type Tracer } from "effect"
import { notificationsReceived } from "../../domain/Metrics.ts"
import { decodeGraphPresenceResult, type GraphPresence } from "../../domain/Presence.ts"
import { sameTeamsUser } from "../../domain/TeamsId.ts"
import { DecryptPool, maxChunk } from "./crypto/DecryptPool.ts"
import { FloodGate } from "./FloodGate.ts"
import type { DecryptResult } from "./crypto/RichCrypto.ts"
import { ValidationTokens } from "./crypto/ValidationTokens.ts"
import type { Batch, BatchItem } from "./Intake.ts"
import { type ChangeNotification, type EncryptedContent, notificationUserId } from "./Notifications.ts"
import { endSpan } from "../../observability/ChangeTrace.ts"
import { countRejected, logRejected, makeRejections, type RejectReason } from "./Rejections.ts"

export interface PushedPresence {
  readonly userId: string
  readonly presence: GraphPresence
  readonly receivedAt: number
  /** Milliseconds on the Clock when the item came back decrypted. */
  readonly decryptedAt: number
  /** The decryption's span, parent of what follows for this change (one trace per change). */
  readonly span?: Tracer.AnySpan | undefined
}

/** The counter of accepted presence items, with its attributes resolved once (it is updated per chunk of a burst). */
export const presencesReceived = Metric.withAttributes(notificationsReceived, { kind: "presence" })

/**
 * Without the flood fallback: chunks handed to the decryption pool and not yet published, enough to keep the workers
 * busy between two wakes (the processor waits beyond it).
 */
const chunksInFlight = 16

interface DecryptingChunk {
  readonly items: ReadonlyArray<BatchItem>
  readonly results: Fiber.Fiber<ReadonlyArray<DecryptResult>>
  /** Whether the batch's validation tokens held (shared by the batch's chunks; rejections already counted). */
  readonly verified: Fiber.Fiber<boolean>
  readonly receivedAt: number
  readonly span: Tracer.Span | undefined
}

export interface Decryption {
  readonly pool: DecryptPool["Service"]
  readonly tokens: ValidationTokens["Service"]
  readonly decrypting: Queue.Queue<DecryptingChunk>
  /** The backlog in the pool and its drain rate: whether a new item still fits the latency budget. */
  readonly gate: FloodGate
}

/** One item on one worker before any is measured: an RSA-2048 unwrap (≈ 0.3 ms here) and the rest of the item. */
const initialMicrosPerItem = 350

/**
 * The pipeline, with its publisher fiber forked into the current scope. `latencyBudgetMillis` (0 = off) is the
 * longest a rich item may expect to wait for decryption before its user's presence is read instead.
 */
export const makeDecryption = Effect.fnUntraced(function*(presences: PubSub.PubSub<PushedPresence>, latencyBudgetMillis: number) {
  const pool = yield* DecryptPool
  const decryption: Decryption = {
    pool,
    tokens: yield* ValidationTokens,
    // With the fallback on, the gate bounds the backlog: the processor must never wait here, or the POSTs behind it
    // would wait unseen by the gate, neither decrypted nor read.
    decrypting: yield* (latencyBudgetMillis > 0 ? Queue.unbounded<DecryptingChunk>() : Queue.bounded<DecryptingChunk>(chunksInFlight)),
    gate: new FloodGate({ latencyBudgetMillis, workers: pool.size, initialMicrosPerItem })
  }
  const pace: Pace = { items: 0 }
  yield* Queue.take(decryption.decrypting).pipe(
    Effect.flatMap((chunk) => publishChunk(chunk, presences, pace)),
    Effect.catchCause((cause) => Effect.logError("publishing decrypted notifications failed", cause)),
    Effect.forever,
    Effect.forkScoped
  )
  return decryption
})

/**
 * Hands a batch's rich items to the pool chunk by chunk, without waiting: the batch's validation tokens are verified
 * meanwhile, and the processor goes on with the next batch. Nothing is published before its batch's tokens are
 * verified; a batch that fails is dropped whole (its items were decrypted for nothing, which only a sender that knows
 * a subscription's clientState can cause).
 */
export const decryptBatch = Effect.fnUntraced(function*(decryption: Decryption, batch: Batch, rich: ReadonlyArray<BatchItem>) {
  if (rich.length === 0) return
  const tenants = rich.flatMap(({ item }) => (item.tenantId === undefined ? [] : [item.tenantId]))
  const verified = yield* Effect.forkChild(decryption.tokens.verify(batch.validationTokens, tenants).pipe(
    Effect.as(true),
    Effect.catch((error) =>
      logRejected("validation_token", error.message).pipe(
        Effect.andThen(rich.length > 1 ? countRejected("validation_token", rich.length - 1) : Effect.void),
        Effect.as(false)
      )
    )
  ))
  for (let i = 0; i < rich.length; i += maxChunk) {
    const items = rich.slice(i, i + maxChunk)
    // A batch without a span (no tracing backend, ChangeTrace.ts) starts none.
    const span = batch.span === undefined
      ? undefined
      : yield* Effect.makeSpan("NotificationsInbox.decrypt", { parent: batch.span, attributes: { "notification.items": items.length } })
    decryption.gate.started(items.length)
    const results = yield* Effect.forkChild(decryption.pool.decrypt(items.map(({ item }) => item.encryptedContent as EncryptedContent)).pipe(
      (decrypt) => (span === undefined ? decrypt : Effect.withParentSpan(decrypt, span)),
      Effect.onExit((exit) =>
        Effect.andThen(
          Effect.sync(() => {
            decryption.gate.finished(items.length)
            decryption.gate.measured(decryption.pool.itemMicros())
          }),
          endSpan(span, exit)
        )
      )
    ))
    yield* Queue.offer(decryption.decrypting, { items, results, verified, receivedAt: batch.receivedAt, span })
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
const publishChunk = Effect.fnUntraced(function*(chunk: DecryptingChunk, presences: PubSub.PubSub<PushedPresence>, pace: Pace) {
  if (!(yield* Fiber.join(chunk.verified))) return
  const results = yield* Fiber.join(chunk.results)
  const decryptedAt = yield* Clock.currentTimeMillis
  const accepted: Array<PushedPresence> = []
  const rejections = makeRejections()
  for (let i = 0; i < chunk.items.length; i++) {
    const checked = checkDecrypted(chunk.items[i]!.item, results[i]!)
    if (checked.ok) {
      accepted.push({ userId: checked.presence.id, presence: checked.presence, receivedAt: chunk.receivedAt, decryptedAt, span: chunk.span })
      continue
    }
    const { ok: _, reason, message, ...annotations } = checked
    rejections.add(reason, message, annotations)
  }
  yield* rejections.report(chunk.items.length)
  if (accepted.length > 0) {
    yield* Metric.update(presencesReceived, accepted.length)
    yield* PubSub.publishAll(presences, accepted)
  }
  // Let the presence source, the flow and the writer run after a full chunk's worth of items (a flood's chunks are
  // full). A yield waits for the event loop's next turn: with many tenants a chunk is one POST of 1–4 items, and
  // yielding after each would publish one POST per turn and tenant — slower than they come when turns are long.
  pace.items += chunk.items.length
  if (pace.items >= maxChunk) {
    pace.items = 0
    yield* Effect.yieldNow
  }
})

type DecryptedCheck =
  | { readonly ok: true; readonly presence: GraphPresence }
  | {
    readonly ok: false
    readonly reason: RejectReason
    readonly message: string
    readonly subscriptionId?: string
    readonly userId?: string
  }

/**
 * Checks one decrypted item: the presence it carries, or why it is rejected (it did not decrypt, is not a presence,
 * or names another user than the notification). Synchronous and without state: it runs once per item of a burst.
 */
export const checkDecrypted = (item: ChangeNotification, result: DecryptResult): DecryptedCheck => {
  if (!result.ok) return { ok: false, reason: result.reason, message: result.message, subscriptionId: item.subscriptionId }
  let json: unknown
  try {
    json = JSON.parse(result.plaintext)
  } catch (error) {
    return { ok: false, reason: "decrypt", message: `decrypted content is not a presence: ${String(error)}` }
  }
  const decoded = decodeGraphPresenceResult(json)
  if (Result.isFailure(decoded)) {
    return { ok: false, reason: "decrypt", message: `decrypted content is not a presence: ${decoded.failure.message}` }
  }
  const presence = decoded.success
  const claimed = notificationUserId(item)
  if (claimed !== undefined && !sameTeamsUser(claimed, presence.id)) {
    return { ok: false, reason: "decrypt", message: "decrypted presence names another user than the notification", userId: claimed }
  }
  return { ok: true, presence }
}
