/**
 * Between the webhook and the rest of the connector. The webhook calls `acceptNotifications` / `acceptLifecycle`,
 * which check each item against the subscriptions the connector owns and queue it (Intake.ts) without waiting for
 * processing; the processor sorts each batch, one at a time (Processor.ts: in the POST's fiber when nothing is before
 * it): user changes and basic presence notifications go out at once, rich items are decrypted and verified
 * (Decryption.ts) and go out as typed presences, in arrival order.
 */
import { Clock, Context, Effect, Layer, Metric, PubSub, Queue, type Scope, Stream } from "effect"
import { floodFallbackItems, notificationsReceivedOf } from "../../domain/Metrics.ts"
import { SubscriptionSettings } from "../subscriptions/SubscriptionSettings.ts"
import {
  decryptBatch,
  type Decryption,
  makeDecryption,
  type PresenceConsumer,
  presencesReceived,
  type PushedPresence
} from "./Decryption.ts"
import { admitWhenDecryptionIsBehind, FloodEpisode, floodQuietMillis, splitWhenWorthReading } from "./FloodGate.ts"
import {
  acceptLifecycle,
  acceptNotifications,
  type Batch,
  type BatchItem,
  type Intake,
  type KnownSubscription,
  KnownSubscriptions,
  type LifecycleSignal
} from "./Intake.ts"
import type { ChangeNotificationCollection, LifecycleNotificationCollection } from "./Notifications.ts"
import { notificationUserId } from "./Notifications.ts"
import { makeProcessor } from "./Processor.ts"
import { makeRejections } from "./Rejections.ts"

export type { PresenceConsumer, PushedPresence } from "./Decryption.ts"
export { type KnownSubscription, type LifecycleSignal, refuseAfterFailedItems, type SubscriptionKind } from "./Intake.ts"
export { countRejected, logRejected, type RejectReason } from "./Rejections.ts"

export interface UserChange {
  readonly userId: string
  readonly changeType: "updated" | "deleted"
}

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
  /** Verified, decrypted presences in arrival order (not yet ordered by sequenceNumber: PresenceSource does that). */
  readonly presences: Stream.Stream<PushedPresence>
  /**
   * The same presences, each published array handed to `consume` in the publisher's own fiber, in order, until the
   * scope closes: no stream and no fiber of the consumer's per chunk (with many tenants a chunk is one POST's item). A
   * defect in `consume` is logged by the publisher, which goes on with the next chunk.
   */
  consumePresences(consume: PresenceConsumer): Effect.Effect<void, never, Scope.Scope>
  readonly userChanges: Stream.Stream<UserChange>
  readonly lifecycle: Stream.Stream<LifecycleSignal>
  /**
   * User ids to read: their presence changed but arrived without resource data (basic notifications), or as rich items
   * the decryption backlog could not take within its latency budget (FloodGate.ts).
   */
  readonly refetch: Stream.Stream<ReadonlyArray<string>>
}>()("teams-presence-connector/graph/notifications/NotificationsInbox") {
  static readonly layer = Layer.effect(
    NotificationsInbox,
    Effect.gen(function*() {
      const settings = yield* SubscriptionSettings
      const subscriptions = new KnownSubscriptions()
      // queueCapacity counts items; the queue holds batches, reckoned at 16 items each.
      const queue = yield* Queue.dropping<Batch>(Math.max(1, Math.ceil(settings.queueCapacity / 16)))
      const presences = yield* PubSub.unbounded<PushedPresence>()
      const consumers = new Set<PresenceConsumer>()
      const flood: Flood = {
        refetch: yield* PubSub.unbounded<ReadonlyArray<string>>(),
        episode: new FloodEpisode(floodQuietMillis),
        budgetMillis: settings.floodLatencyBudgetMillis
      }
      const outputs: Outputs = {
        presences,
        userChanges: yield* PubSub.unbounded<UserChange>(),
        decryption: yield* makeDecryption(
          presences,
          settings.floodLatencyBudgetMillis,
          (userIds, items, waited) =>
            divert(flood, userIds, items, `${items} held items would come back after ${Math.round(waited)} ms and more`),
          consumers
        ),
        flood
      }
      const processor = yield* makeProcessor(
        queue,
        (batch) => processBatch(outputs, batch).pipe(Effect.catchCause((cause) => Effect.logError("notification batch failed", cause))),
        // With the fallback off, publishing waits for room (Decryption.ts `chunksInFlight`): never in a POST's fiber.
        settings.floodLatencyBudgetMillis > 0
      )
      const intake: Intake = { subscriptions, queue, lifecycle: yield* PubSub.unbounded<LifecycleSignal>(), processNow: processor.processNow }
      return NotificationsInbox.of({
        register: (subscription) => Effect.sync(() => subscriptions.register(subscription)),
        unregister: (subscriptionId) => Effect.sync(() => subscriptions.unregister(subscriptionId)),
        expect: (expected) => Effect.sync(() => Effect.sync(subscriptions.expect(expected))),
        acceptNotifications: (body) => acceptNotifications(intake, body),
        acceptLifecycle: (body) => acceptLifecycle(intake, body),
        presences: Stream.fromPubSub(outputs.presences),
        consumePresences: (consume) =>
          Effect.acquireRelease(Effect.sync(() => void consumers.add(consume)), () => Effect.sync(() => void consumers.delete(consume))),
        userChanges: Stream.fromPubSub(outputs.userChanges),
        lifecycle: Stream.fromPubSub(intake.lifecycle),
        refetch: Stream.fromPubSub(outputs.flood.refetch)
      })
    })
  )
}

interface Outputs {
  readonly presences: PubSub.PubSub<PushedPresence>
  readonly userChanges: PubSub.PubSub<UserChange>
  readonly decryption: Decryption
  readonly flood: Flood
}

interface Flood {
  /** The users whose presence is to be read (basic notifications, and rich items read instead of decrypted). */
  readonly refetch: PubSub.PubSub<ReadonlyArray<string>>
  readonly budgetMillis: number
  /** The items read instead since the backlog went over its budget, for one log line when it starts and one when it ends. */
  readonly episode: FloodEpisode
}

/**
 * Reads `userIds` in place of `items` rich items (counted; one log line when a flood episode starts, `why`, and one
 * when it ends: `divertOverBudget`).
 */
const divert = Effect.fnUntraced(function*(flood: Flood, userIds: ReadonlyArray<string>, items: number, why: string) {
  if (items <= 0) return
  if (flood.episode.divert(items, yield* Clock.currentTimeMillis)) {
    yield* Effect.logWarning(
      `decryption backlog over its latency budget of ${flood.budgetMillis} ms (${why}): reading those users' presence instead of decrypting`
    ).pipe(Effect.annotateLogs({ logKey: "flood-fallback" }))
  }
  yield* Metric.update(floodFallbackItems, items)
  if (userIds.length > 0) yield* PubSub.publish(flood.refetch, userIds)
})

const usersReceived = notificationsReceivedOf("users")

/** Sorts one batch: user changes and basic presence notifications go out at once, rich items to decryption. */
const processBatch = Effect.fnUntraced(function*(outputs: Outputs, batch: Batch) {
  const rich: Array<BatchItem> = []
  const basic: Array<string> = []
  const rejections = makeRejections()
  for (const entry of batch.items) {
    const userId = notificationUserId(entry.item)
    if (entry.subscription.kind === "users") {
      if (userId === undefined) {
        rejections.add("malformed", "users notification without a user id")
        continue
      }
      yield* usersReceived.update(1)
      const changeType: UserChange["changeType"] = entry.item.changeType.toLowerCase().includes("deleted") ? "deleted" : "updated"
      yield* PubSub.publish(outputs.userChanges, { userId, changeType })
    } else if (entry.item.encryptedContent != null) {
      rich.push(entry)
    } else if (userId !== undefined) {
      yield* presencesReceived.update(1)
      basic.push(userId)
    } else {
      rejections.add("malformed", "presence notification without resource data or a user id")
    }
  }
  yield* rejections.report(batch.items.length)
  const decrypt = yield* divertOverBudget(outputs, batch, rich, basic)
  if (basic.length > 0) yield* PubSub.publish(outputs.flood.refetch, basic)
  yield* decryptBatch(outputs.decryption, batch, decrypt)
})

/**
 * The rich items the decryption backlog can take within its latency budget, counted from the POST's arrival (time spent
 * queued before this point counts too); the users of the others go to `read` (getPresencesByUserId answers with their
 * current presence, which also makes their older items obsolete: PresenceState.ts), and so do admitted items of users
 * read anyway (FloodGate.ts `splitFlood`) — when that spares enough decryption to be worth a request (FloodGate.ts
 * `minItemsPerRead`; else all are decrypted). One log line when a flood episode starts and one when it ends
 * (FloodGate.ts `FloodEpisode`).
 */
const divertOverBudget = Effect.fnUntraced(function*(outputs: Outputs, batch: Batch, rich: ReadonlyArray<BatchItem>, read: Array<string>) {
  if (rich.length === 0) return rich
  const gate = outputs.decryption.gate
  const now = yield* Clock.currentTimeMillis
  const waitedMillis = now - batch.receivedAt
  const admitted = admitWhenDecryptionIsBehind(gate.at(now), rich.length, waitedMillis, outputs.decryption.pool.pendingItems())
  const split = admitted === rich.length
    ? undefined
    : splitWhenWorthReading(rich, admitted, (entry) => notificationUserId(entry.item))
  if (split === undefined || split.diverted === 0) {
    const ended = outputs.flood.episode.decryptedWhole(now)
    if (ended !== undefined) yield* Effect.logInfo(`decryption backlog within its latency budget again; ${ended} rich items were read instead`)
    return rich
  }
  read.push(...split.read)
  gate.divertedAt(now)
  yield* divert(
    outputs.flood,
    [],
    split.diverted,
    `${gate.pending} items waiting, ${rich.length} more arriving after ${Math.round(waitedMillis)} ms would wait ≈ ${Math.round(waitedMillis + gate.expectedWaitMillis(rich.length))} ms`
  )
  return split.decrypt
})
