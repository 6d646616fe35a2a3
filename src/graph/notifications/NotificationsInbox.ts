/**
 * Between the webhook and the rest of the connector: checks each item against the subscriptions the connector owns
 * (subscriptionId + clientState, constant time), queues accepted batches (bounded) for a processor fiber that verifies
 * validation tokens, decrypts in the worker pool, orders by sequenceNumber and publishes typed events.
 * The webhook only calls `acceptNotifications` / `acceptLifecycle`, which never wait for processing.
 */
import { Clock, Context, Effect, Fiber, Layer, Metric, Option, PubSub, Queue, Redacted, Result, Stream, type Tracer } from "effect"
import { count } from "../../domain/LogText.ts"
import { decodeGraphPresenceResult, type GraphPresence } from "../../domain/Presence.ts"
import { notificationsReceived } from "../../domain/Metrics.ts"
import { DecryptPool, maxChunk } from "./crypto/DecryptPool.ts"
import type { DecryptResult } from "./crypto/RichCrypto.ts"
import { constantTimeEquals } from "./crypto/RichCrypto.ts"
import { ValidationTokens } from "./crypto/ValidationTokens.ts"
import {
  type ChangeNotification,
  type ChangeNotificationCollection,
  type EncryptedContent,
  type LifecycleEvent,
  type LifecycleNotificationCollection,
  notificationUserId
} from "./Notifications.ts"
import { countRejected, logRejected, makeRejections, type RejectReason } from "./Rejections.ts"
import { endSpan } from "../../observability/ChangeTrace.ts"
import { SubscriptionSettings } from "../subscriptions/SubscriptionSettings.ts"

export { countRejected, logRejected, type RejectReason } from "./Rejections.ts"

export type SubscriptionKind = "presence" | "users"

/** A subscription the connector created and will accept notifications for. */
export interface KnownSubscription {
  readonly id: string
  readonly kind: SubscriptionKind
  /** The shard key (presence) or "users". */
  readonly key: string
  readonly clientState: Redacted.Redacted<string>
}

export interface PushedPresence {
  readonly userId: string
  readonly presence: GraphPresence
  readonly receivedAt: number
  /** Milliseconds on the Clock when the item came back decrypted. */
  readonly decryptedAt: number
  /** The decryption's span, parent of what follows for this change (one trace per change). */
  readonly span?: Tracer.AnySpan | undefined
}

export interface UserChange {
  readonly userId: string
  readonly changeType: "updated" | "deleted"
}

export interface LifecycleSignal {
  readonly subscriptionId: string
  readonly kind: SubscriptionKind
  readonly key: string
  readonly event: LifecycleEvent
}

/** Chunks handed to the decryption pool and not yet published: enough to keep the workers busy between two wakes. */
const chunksInFlight = 16

interface DecryptingChunk {
  readonly items: Batch["items"]
  readonly results: Fiber.Fiber<ReadonlyArray<DecryptResult>>
  /** Whether the batch's validation tokens held (shared by the batch's chunks; rejections already counted). */
  readonly verified: Fiber.Fiber<boolean>
  readonly receivedAt: number
  readonly span: Tracer.Span
}

interface Batch {
  readonly items: ReadonlyArray<{ readonly item: ChangeNotification; readonly subscription: KnownSubscription }>
  readonly validationTokens: ReadonlyArray<string>
  readonly receivedAt: number
  /** The webhook request's span. */
  readonly span: Tracer.AnySpan | undefined
}

type DecryptedCheck =
  | { readonly ok: true; readonly presence: GraphPresence }
  | {
    readonly ok: false
    readonly reason: RejectReason
    readonly message: string
    readonly subscriptionId?: string
    readonly userId?: string
  }

/** The counter of accepted presence items, with its attributes resolved once (it is updated per chunk of a burst). */
const presencesReceived = Metric.withAttributes(notificationsReceived, { kind: "presence" })

/**
 * A request whose first items all fail the subscriptionId / clientState check is refused as a whole: the rest is
 * counted as rejected without being looked at. Graph's own POSTs carry the connector's subscriptions; a body whose
 * first items are all foreign is forged or left over, and checking 65,535 items of it would only cost time.
 */
export const refuseAfterFailedItems = 16

export class NotificationsInbox extends Context.Service<NotificationsInbox, {
  register(subscription: KnownSubscription): Effect.Effect<void>
  unregister(subscriptionId: string): Effect.Effect<void>
  /**
   * Accepts items carrying this clientState while the subscription is being created (Graph may notify before the
   * creation call has returned the id); the returned effect withdraws it.
   */
  expect(pending: Omit<KnownSubscription, "id">): Effect.Effect<Effect.Effect<void>>
  /** Checks and queues; returns how many items were accepted. Never waits for processing. */
  acceptNotifications(body: ChangeNotificationCollection): Effect.Effect<number>
  acceptLifecycle(body: LifecycleNotificationCollection): Effect.Effect<number>
  readonly presences: Stream.Stream<PushedPresence>
  readonly userChanges: Stream.Stream<UserChange>
  readonly lifecycle: Stream.Stream<LifecycleSignal>
  /** User ids whose presence changed but arrived without resource data (basic notifications): read them. */
  readonly refetch: Stream.Stream<ReadonlyArray<string>>
}>()("teams-presence-connector/graph/notifications/NotificationsInbox") {
  static readonly layer = Layer.effect(
    NotificationsInbox,
    Effect.gen(function*() {
      const settings = yield* SubscriptionSettings
      const pool = yield* DecryptPool
      const tokens = yield* ValidationTokens
      const known = new Map<string, KnownSubscription>()
      const lastSequence = new Map<string, string>()
      const queue = yield* Queue.dropping<Batch>(Math.max(1, Math.ceil(settings.queueCapacity / 16)))
      const presences = yield* PubSub.unbounded<PushedPresence>()
      const userChanges = yield* PubSub.unbounded<UserChange>()
      const lifecycle = yield* PubSub.unbounded<LifecycleSignal>()
      const refetch = yield* PubSub.unbounded<ReadonlyArray<string>>()

      const pending = new Set<Omit<KnownSubscription, "id">>()
      const check = (subscriptionId: string, clientState: string | null | undefined) => {
        const subscription = known.get(subscriptionId)
        if (subscription === undefined) {
          for (const expected of pending) {
            if (clientState != null && constantTimeEquals(clientState, Redacted.value(expected.clientState))) {
              return { ok: true as const, subscription: { ...expected, id: subscriptionId } }
            }
          }
          return { ok: false as const, reason: "unknown_subscription" as const }
        }
        if (clientState == null || !constantTimeEquals(clientState, Redacted.value(subscription.clientState))) {
          return { ok: false as const, reason: "client_state" as const }
        }
        return { ok: true as const, subscription }
      }

      const acceptNotifications = Effect.fnUntraced(function*(body: ChangeNotificationCollection) {
        const accepted: Array<Batch["items"][number]> = []
        const rejections = makeRejections()
        // A POST carries up to 100 items of the same few subscriptions: each distinct (subscriptionId, clientState)
        // pair is compared once, which keeps the comparison constant-time and the webhook's answer short.
        const checked = new Map<string, ReturnType<typeof check>>()
        const items = body.value
        let unchecked = 0
        for (let i = 0; i < items.length; i++) {
          if (accepted.length === 0 && rejections.total >= refuseAfterFailedItems) {
            unchecked = items.length - i
            break
          }
          const item = items[i]!
          const pair = JSON.stringify([item.subscriptionId, item.clientState ?? null])
          let result = checked.get(pair)
          if (result === undefined) {
            result = check(item.subscriptionId, item.clientState)
            checked.set(pair, result)
          }
          if (!result.ok) {
            rejections.add(result.reason, "subscriptionId or clientState does not match a subscription of this connector", {
              subscriptionId: item.subscriptionId
            })
            continue
          }
          accepted.push({ item, subscription: result.subscription })
        }
        if (unchecked > 0) {
          rejections.add("unknown_subscription", "", {}, unchecked)
        }
        yield* rejections.report(
          items.length,
          unchecked > 0 ? `; the request was refused after its first ${refuseAfterFailedItems} items failed (${count(unchecked)} not checked)` : ""
        )
        if (accepted.length === 0) return 0
        const receivedAt = yield* Clock.currentTimeMillis
        const span = Option.getOrUndefined(yield* Effect.option(Effect.currentSpan))
        const queued = yield* Queue.offer(queue, { items: accepted, validationTokens: body.validationTokens ?? [], receivedAt, span })
        if (!queued) {
          yield* countRejected("overflow", accepted.length - 1)
          yield* logRejected("overflow", `notification queue full, ${accepted.length} items dropped (reconciliation will correct them)`)
          return 0
        }
        return accepted.length
      })

      const acceptLifecycle = Effect.fnUntraced(function*(body: LifecycleNotificationCollection) {
        let accepted = 0
        const rejections = makeRejections()
        for (const item of body.value) {
          if (accepted === 0 && rejections.total >= refuseAfterFailedItems) {
            rejections.add("unknown_subscription", "", {}, 1)
            continue
          }
          const result = check(item.subscriptionId, item.clientState)
          if (!result.ok) {
            rejections.add(result.reason, "lifecycle notification for an unknown subscription or with a wrong clientState", {
              subscriptionId: item.subscriptionId
            })
            continue
          }
          accepted++
          yield* Metric.update(Metric.withAttributes(notificationsReceived, { kind: "lifecycle" }), 1)
          yield* Effect.logInfo(`lifecycle event ${item.lifecycleEvent}`).pipe(
            Effect.annotateLogs({ subscriptionId: item.subscriptionId, kind: result.subscription.kind })
          )
          yield* PubSub.publish(lifecycle, {
            subscriptionId: item.subscriptionId,
            kind: result.subscription.kind,
            key: result.subscription.key,
            event: item.lifecycleEvent
          })
        }
        yield* rejections.report(body.value.length)
        return accepted
      })

      /** Newer-or-first wins; equal or older sequence numbers are stale. */
      const inOrder = (userId: string, sequence: string | null | undefined): boolean => {
        if (sequence == null || sequence === "") return true
        const last = lastSequence.get(userId)
        if (last !== undefined && sequence <= last) return false
        lastSequence.set(userId, sequence)
        return true
      }

      /**
       * Checks one decrypted item: the presence it carries, or why it is rejected. Synchronous (it runs once per item
       * of a burst); only the sequence numbers it records are state.
       */
      const checkDecrypted = (item: ChangeNotification, result: DecryptResult): DecryptedCheck => {
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
        if (claimed !== undefined && claimed.toLowerCase() !== presence.id.toLowerCase()) {
          return { ok: false, reason: "decrypt", message: "decrypted presence names another user than the notification", userId: claimed }
        }
        if (!inOrder(presence.id, presence.sequenceNumber)) {
          return { ok: false, reason: "stale", message: "an older or duplicate sequenceNumber", userId: presence.id }
        }
        return { ok: true, presence }
      }

      // Decryption is pipelined: the processor hands each chunk of a batch to the pool at once (see processRich) and
      // goes on with the next batch, while the publisher takes the chunks in arrival order and publishes each as soon
      // as it is decrypted and its batch verified. The workers never wait for the event loop, the first items of a
      // burst reach the PBX while the rest are still being decrypted, and order (hence sequenceNumber checks) is kept.
      // A chunk is checked item by item and published as one array: a bad item is logged and counted, never fails the
      // others, and the good ones travel on together.
      const decrypting = yield* Queue.bounded<DecryptingChunk>(chunksInFlight)
      yield* Effect.gen(function*() {
        while (true) {
          const chunk = yield* Queue.take(decrypting)
          if (!(yield* Fiber.join(chunk.verified))) continue
          const results = yield* Fiber.join(chunk.results)
          const decryptedAt = yield* Clock.currentTimeMillis
          const accepted: Array<PushedPresence> = []
          const rejections = makeRejections()
          for (let i = 0; i < chunk.items.length; i++) {
            const item = chunk.items[i]!.item
            const checked = checkDecrypted(item, results[i]!)
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
          // Let the presence source, the flow and the writer run between chunks.
          yield* Effect.yieldNow
        }
      }).pipe(
        Effect.catchCause((cause) => Effect.logError("publishing decrypted notifications failed", cause)),
        Effect.forever,
        Effect.forkScoped
      )

      // A batch's validation tokens are verified while its items are already being decrypted: the processor never
      // waits for a verification before it hands the next batch to the pool. Nothing is published before its batch's
      // tokens are verified; a batch that fails is dropped whole (its items were decrypted for nothing, which only a
      // sender that knows a subscription's clientState can cause).
      const processRich = Effect.fnUntraced(function*(batch: Batch, rich: ReadonlyArray<Batch["items"][number]>) {
        if (rich.length === 0) return
        const tenants = rich.flatMap(({ item }) => (item.tenantId === undefined ? [] : [item.tenantId]))
        const verified = yield* Effect.forkChild(tokens.verify(batch.validationTokens, tenants).pipe(
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
          const span = yield* Effect.makeSpan("NotificationsInbox.decrypt", { parent: batch.span, attributes: { "notification.items": items.length } })
          const results = yield* Effect.forkChild(pool.decrypt(items.map(({ item }) => item.encryptedContent as EncryptedContent)).pipe(
            Effect.withParentSpan(span),
            Effect.onExit((exit) => endSpan(span, exit))
          ))
          yield* Queue.offer(decrypting, { items, results, verified, receivedAt: batch.receivedAt, span })
        }
      })

      const processBatch = Effect.fnUntraced(function*(batch: Batch) {
        const rich: Array<Batch["items"][number]> = []
        const basic: Array<string> = []
        const rejections = makeRejections()
        for (const entry of batch.items) {
          const userId = notificationUserId(entry.item)
          if (entry.subscription.kind === "users") {
            if (userId === undefined) {
              rejections.add("malformed", "users notification without a user id")
              continue
            }
            yield* Metric.update(Metric.withAttributes(notificationsReceived, { kind: "users" }), 1)
            const changeType: UserChange["changeType"] = entry.item.changeType.toLowerCase().includes("deleted") ? "deleted" : "updated"
            yield* PubSub.publish(userChanges, { userId, changeType })
          } else if (entry.item.encryptedContent != null) {
            rich.push(entry)
          } else if (userId !== undefined) {
            yield* Metric.update(presencesReceived, 1)
            basic.push(userId)
          } else {
            rejections.add("malformed", "presence notification without resource data or a user id")
          }
        }
        yield* rejections.report(batch.items.length)
        if (basic.length > 0) yield* PubSub.publish(refetch, basic)
        yield* processRich(batch, rich)
      })

      yield* Queue.take(queue).pipe(
        Effect.flatMap((batch) =>
          processBatch(batch).pipe(
            Effect.catchCause((cause) => Effect.logError("notification batch failed", cause))
          )
        ),
        Effect.forever,
        Effect.forkScoped
      )

      return NotificationsInbox.of({
        register: (subscription) => Effect.sync(() => void known.set(subscription.id, subscription)),
        unregister: (subscriptionId) => Effect.sync(() => void known.delete(subscriptionId)),
        expect: (expected) =>
          Effect.sync(() => {
            const entry = { ...expected }
            pending.add(entry)
            return Effect.sync(() => void pending.delete(entry))
          }),
        acceptNotifications,
        acceptLifecycle,
        presences: Stream.fromPubSub(presences),
        userChanges: Stream.fromPubSub(userChanges),
        lifecycle: Stream.fromPubSub(lifecycle),
        refetch: Stream.fromPubSub(refetch)
      })
    })
  )
}
