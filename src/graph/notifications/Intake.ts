/**
 * The inbox's intake, where the webhook's calls end: each item is checked against the subscriptions the connector owns
 * (subscriptionId + clientState, compared in constant time) and the accepted items of a POST go to the processor as
 * one batch: processed at once when nothing is before it, else into a bounded queue (Processor.ts). Nothing here waits
 * for decryption, so Graph gets its 202 at once.
 */
import { Clock, Effect, Metric, Option, PubSub, Queue, Redacted, type Tracer } from "effect"
import { count } from "../../domain/LogText.ts"
import { tracing } from "../../observability/ChangeTrace.ts"
import { notificationsReceived } from "../../domain/Metrics.ts"
import { constantTimeEquals } from "./crypto/RichCrypto.ts"
import type {
  ChangeNotification,
  ChangeNotificationCollection,
  LifecycleEvent,
  LifecycleNotificationCollection
} from "./Notifications.ts"
import { countRejected, logRejected, makeRejections } from "./Rejections.ts"

export type SubscriptionKind = "presence" | "users"

/** A subscription the connector created and will accept notifications for. */
export interface KnownSubscription {
  readonly id: string
  readonly kind: SubscriptionKind
  /** The shard key (presence) or "users". */
  readonly key: string
  readonly clientState: Redacted.Redacted<string>
}

export interface LifecycleSignal {
  readonly subscriptionId: string
  readonly kind: SubscriptionKind
  readonly key: string
  readonly event: LifecycleEvent
}

/** The accepted items of one POST, queued for the processor. */
export interface Batch {
  readonly items: ReadonlyArray<BatchItem>
  readonly validationTokens: ReadonlyArray<string>
  readonly receivedAt: number
  /** The webhook request's span. */
  readonly span: Tracer.AnySpan | undefined
}

export interface BatchItem {
  readonly item: ChangeNotification
  readonly subscription: KnownSubscription
}

/**
 * A request whose first items all fail the subscriptionId / clientState check is refused as a whole: the rest is
 * counted as rejected without being looked at. Graph's own POSTs carry the connector's subscriptions; a body whose
 * first items are all foreign is forged or left over, and checking 65,535 items of it would only cost time.
 */
export const refuseAfterFailedItems = 16

type Check =
  | { readonly ok: true; readonly subscription: KnownSubscription }
  | { readonly ok: false; readonly reason: "unknown_subscription" | "client_state" }

/** The subscriptions the connector owns, and those being created (known by their clientState until Graph names them). */
export class KnownSubscriptions {
  readonly #known = new Map<string, KnownSubscription>()
  readonly #pending = new Set<Omit<KnownSubscription, "id">>()

  register(subscription: KnownSubscription): void {
    this.#known.set(subscription.id, subscription)
  }

  unregister(subscriptionId: string): void {
    this.#known.delete(subscriptionId)
  }

  /** Accepts items carrying this clientState until the returned function withdraws it. */
  expect(expected: Omit<KnownSubscription, "id">): () => void {
    const entry = { ...expected }
    this.#pending.add(entry)
    return () => void this.#pending.delete(entry)
  }

  check(subscriptionId: string, clientState: string | null | undefined): Check {
    const subscription = this.#known.get(subscriptionId)
    if (subscription === undefined) {
      for (const expected of this.#pending) {
        if (clientState != null && constantTimeEquals(clientState, Redacted.value(expected.clientState))) {
          return { ok: true, subscription: { ...expected, id: subscriptionId } }
        }
      }
      return { ok: false, reason: "unknown_subscription" }
    }
    if (clientState == null || !constantTimeEquals(clientState, Redacted.value(subscription.clientState))) {
      return { ok: false, reason: "client_state" }
    }
    return { ok: true, subscription }
  }
}

/**
 * A POST carries up to 100 items of the same few subscriptions: each distinct (subscriptionId, clientState) pair is
 * compared once, which keeps the comparison constant-time and the webhook's answer short; an item of the same pair as
 * the one before costs two string comparisons.
 */
class CheckedPairs {
  readonly #subscriptions: KnownSubscriptions
  /** Made at the second distinct pair: most POSTs carry one item, or items of one pair. */
  #checked: Map<string, Map<string | null, Check>> | undefined
  #lastSubscriptionId: string | undefined
  #lastClientState: string | null = null
  #last: Check | undefined

  constructor(subscriptions: KnownSubscriptions) {
    this.#subscriptions = subscriptions
  }

  check(subscriptionId: string, clientState: string | null | undefined): Check {
    const state = clientState ?? null
    if (this.#last !== undefined && subscriptionId === this.#lastSubscriptionId && state === this.#lastClientState) {
      return this.#last
    }
    if (this.#last !== undefined && this.#checked === undefined) {
      this.#checked = new Map([[this.#lastSubscriptionId!, new Map([[this.#lastClientState, this.#last]])]])
    }
    let byState = this.#checked?.get(subscriptionId)
    if (byState === undefined && this.#checked !== undefined) this.#checked.set(subscriptionId, byState = new Map())
    let result = byState?.get(state)
    if (result === undefined) {
      result = this.#subscriptions.check(subscriptionId, clientState)
      byState?.set(state, result)
    }
    this.#lastSubscriptionId = subscriptionId
    this.#lastClientState = state
    this.#last = result
    return result
  }
}

export interface Intake {
  readonly subscriptions: KnownSubscriptions
  /** Bounded: when the processor falls behind, a whole POST is dropped (reconciliation corrects what it carried). */
  readonly queue: Queue.Queue<Batch>
  readonly lifecycle: PubSub.PubSub<LifecycleSignal>
  /** Processes a batch in the caller's fiber when nothing is before it (Processor.ts); false: queue it. */
  readonly processNow?: ((batch: Batch) => Effect.Effect<boolean>) | undefined
}

/** Checks every item of a POST and queues the accepted ones as one batch; returns how many were accepted. */
export const acceptNotifications = Effect.fnUntraced(function*(intake: Intake, body: ChangeNotificationCollection) {
  const accepted: Array<BatchItem> = []
  const rejections = makeRejections()
  const checked = new CheckedPairs(intake.subscriptions)
  const items = body.value
  let unchecked = 0
  for (let i = 0; i < items.length; i++) {
    if (accepted.length === 0 && rejections.total >= refuseAfterFailedItems) {
      unchecked = items.length - i
      break
    }
    const item = items[i]!
    const result = checked.check(item.subscriptionId, item.clientState)
    if (!result.ok) {
      rejections.add(result.reason, "subscriptionId or clientState does not match a subscription of this connector", {
        subscriptionId: item.subscriptionId
      })
      continue
    }
    accepted.push({ item, subscription: result.subscription })
  }
  if (unchecked > 0) rejections.add("unknown_subscription", "", {}, unchecked)
  yield* rejections.report(
    items.length,
    unchecked > 0 ? `; the request was refused after its first ${refuseAfterFailedItems} items failed (${count(unchecked)} not checked)` : ""
  )
  if (accepted.length === 0) return 0
  const receivedAt = yield* Clock.currentTimeMillis
  const span = (yield* tracing) ? Option.getOrUndefined(yield* Effect.option(Effect.currentSpan)) : undefined
  const batch: Batch = { items: accepted, validationTokens: body.validationTokens ?? [], receivedAt, span }
  if (intake.processNow !== undefined && (yield* intake.processNow(batch))) return accepted.length
  const queued = yield* Queue.offer(intake.queue, batch)
  if (!queued) {
    yield* countRejected("overflow", accepted.length - 1)
    yield* logRejected("overflow", `notification queue full, ${accepted.length} items dropped (reconciliation will correct them)`)
    return 0
  }
  return accepted.length
})

const lifecycleReceived = Metric.withAttributes(notificationsReceived, { kind: "lifecycle" })

/** Checks every lifecycle item and publishes the accepted ones at once (they are few); returns how many. */
export const acceptLifecycle = Effect.fnUntraced(function*(intake: Intake, body: LifecycleNotificationCollection) {
  let accepted = 0
  const rejections = makeRejections()
  for (const item of body.value) {
    if (accepted === 0 && rejections.total >= refuseAfterFailedItems) {
      rejections.add("unknown_subscription", "", {}, 1)
      continue
    }
    const result = intake.subscriptions.check(item.subscriptionId, item.clientState)
    if (!result.ok) {
      rejections.add(result.reason, "lifecycle notification for an unknown subscription or with a wrong clientState", {
        subscriptionId: item.subscriptionId
      })
      continue
    }
    accepted++
    yield* Metric.update(lifecycleReceived, 1)
    yield* Effect.logInfo(`lifecycle event ${item.lifecycleEvent}`).pipe(
      Effect.annotateLogs({ subscriptionId: item.subscriptionId, kind: result.subscription.kind })
    )
    yield* PubSub.publish(intake.lifecycle, {
      subscriptionId: item.subscriptionId,
      kind: result.subscription.kind,
      key: result.subscription.key,
      event: item.lifecycleEvent
    })
  }
  yield* rejections.report(body.value.length)
  return accepted
})
