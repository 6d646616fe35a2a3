/**
 * Delivers change notifications like Graph: every presence or user change is matched to the live subscriptions,
 * batched (several items per POST, grouped by notificationUrl), rich items encrypted and signed validation tokens
 * added; a POST not answered 2xx within 3 s is not delivered (retried); the endpoint's answers are measured (> 2.9 s
 * is slow; after 100 POSTs, ≥ 10 % slow in 10 min → delayed, ≥ 15 % → dropped; docs/protocol-notes.md). Faults
 * (drop, duplicate, reorder, silent subscriptions) and lifecycle events come from the control API.
 */
import { Context, Effect, Layer } from "effect"
import { batchChanges } from "./SimBatches.ts"
import type { EndpointStats } from "./SimEndpoints.ts"
import { SimJwks } from "./SimJwks.ts"
import { lifecycleItem, type NotificationItem, presenceItem, userItem } from "./notify/payloads.ts"
import { type SimPresence, SimState, type UserChange } from "./SimState.ts"
import { type SimSubscription, SimSubscriptions } from "./SimSubscriptions.ts"
import { type DeliveryOptions, deliver, endpointStats, makePosting, type Posting, postOnce, send } from "./SimPosting.ts"
import { webhookClient } from "./SimWebhookClient.ts"

export type { DeliveryOptions } from "./SimPosting.ts"

/** Changes whose items are built (and rich ones encrypted) between two yields to the event loop. */
const changesPerSlice = 10

export const defaultDeliveryOptions: DeliveryOptions = {
  batchWindowMillis: 20,
  maxBatch: 100,
  answerTimeoutMillis: 3_000,
  slowMillis: 2_900,
  minSamples: 100,
  windowMillis: 10 * 60_000,
  delayMillis: 10 * 60_000,
  retries: 3,
  retryBaseMillis: 500,
  validationTimeoutMillis: 10_000
}

/** Drop the next n items; send the next n items twice; reverse the item order of the next n POSTs. */
export interface DeliveryFaults {
  drop: number
  duplicate: number
  reorder: number
}

export type { EndpointStats } from "./SimEndpoints.ts"

export type DeliveryCounters = Readonly<Posting["count"]>

export interface DirectItem {
  readonly presence: SimPresence
  readonly sealedWith?: { readonly encryptionCertificate: string; readonly encryptionCertificateId: string }
}

type Change = { readonly _tag: "Presence"; readonly presence: SimPresence } | { readonly _tag: "User"; readonly change: UserChange }

type Entry = { readonly item: NotificationItem; readonly subscription: SimSubscription }

/** The delivery's state: POSTing (SimPosting.ts) and the faults the control API sets. */
interface Delivery extends Posting {
  readonly faults: DeliveryFaults
}

export class SimDelivery extends Context.Service<SimDelivery, {
  readonly faults: DeliveryFaults
  /** The handshake Graph performs before creating a subscription. */
  validate(url: string): Effect.Effect<boolean>
  sendLifecycle(subscription: SimSubscription, event: string): Effect.Effect<boolean>
  /**
   * Control API: POSTs these presences for one subscription at once (one batch, bypassing faults and silence).
   * An item's `sealedWith` seals it with that certificate instead of the subscription's current one, as Graph's
   * retries of items encrypted before a certificate change are. Returns whether the endpoint answered 2xx.
   */
  deliverNow(subscription: SimSubscription, items: ReadonlyArray<DirectItem>): Effect.Effect<boolean>
  endpoints(): ReadonlyArray<EndpointStats>
  counters(): DeliveryCounters
}>()("teams-presence-connector/simulators/graph/SimDelivery") {
  static readonly layerWith = (partial: Partial<DeliveryOptions> = {}) =>
    Layer.effect(
      SimDelivery,
      Effect.gen(function*() {
        const delivery: Delivery = {
          ...(yield* makePosting({ ...defaultDeliveryOptions, ...partial }, yield* SimJwks)),
          faults: { drop: 0, duplicate: 0, reorder: 0 }
        }
        yield* followChanges(delivery, yield* SimState, yield* SimSubscriptions)
        return SimDelivery.of({
          faults: delivery.faults,
          validate: (url) => validate(delivery.options, url),
          sendLifecycle: (subscription, event) => sendLifecycle(delivery, subscription, event),
          deliverNow: (subscription, direct) => deliverNow(delivery, subscription, direct),
          endpoints: () => [...delivery.endpoints.keys()].map((url) => endpointStats(delivery, url, Date.now())),
          counters: () => ({ ...delivery.count })
        })
      })
    )

  static readonly layer = SimDelivery.layerWith()
}

/** The faults the control API set, applied to the next items (and used up). */
const applyFaults = (delivery: Delivery, items: Array<Entry>) => {
  const { faults } = delivery
  let out = items
  while (faults.drop > 0 && out.length > 0) {
    out = out.slice(1)
    faults.drop--
    delivery.count.itemsDropped++
  }
  if (faults.duplicate > 0) {
    const copies = out.slice(0, faults.duplicate)
    faults.duplicate -= copies.length
    out = [...out, ...copies]
  }
  if (faults.reorder > 0 && out.length > 1) {
    faults.reorder--
    out = [...out].reverse()
  }
  return out
}

/** The items a change makes: one per live subscription that covers it. */
const itemsFor = (live: ReadonlyArray<SimSubscription>, change: Change): Array<Entry> => {
  if (change._tag === "Presence") {
    const id = change.presence.id.toLowerCase()
    return live
      .filter((s) => s.kind === "presence" && !s.silent && s.userIds.has(id))
      .map((subscription) => ({ item: presenceItem(subscription, change.presence), subscription }))
  }
  const changeType = change.change._tag === "Deleted" ? "deleted" : "updated"
  return live
    .filter((s) => s.kind === "users" && !s.silent && s.changeType.toLowerCase().includes(changeType))
    .map((subscription) => ({ item: userItem(subscription, change.change.user, changeType), subscription }))
}

/** A batch of changes: their items, the faults, then one POST per endpoint (not waiting for the answers: SimPosting.ts `send`). */
const dispatch = Effect.fnUntraced(function*(delivery: Delivery, subscriptions: SimSubscriptions["Service"], changes: ReadonlyArray<Change>) {
  const live = yield* subscriptions.live
  // Encrypting a rich item costs ≈ 0.3 ms: a batch of 100 is built in slices with a yield between them, so
  // the process's sockets (answers to earlier POSTs among them) are not held up for the whole batch.
  const built: Array<Entry> = []
  for (let i = 0; i < changes.length; i++) {
    if (i > 0 && i % changesPerSlice === 0) yield* Effect.yieldNow
    for (const entry of itemsFor(live, changes[i]!)) built.push(entry)
  }
  const byUrl = new Map<string, Array<Entry>>()
  for (const entry of applyFaults(delivery, built)) {
    const list = byUrl.get(entry.subscription.notificationUrl) ?? []
    list.push(entry)
    byUrl.set(entry.subscription.notificationUrl, list)
  }
  for (const [url, entries] of byUrl) {
    yield* send(delivery, url, entries.map((e) => e.item), entries.filter((e) => e.subscription.includeResourceData).map((e) => e.subscription))
  }
})

/**
 * Presence and user changes, batched like Graph's (SimBatches.ts): the directory hands each change to the batching as
 * it is made (SimUsers.ts listeners), from now until the scope closes, so no change made after this is missed.
 */
const followChanges = Effect.fnUntraced(function*(delivery: Delivery, state: SimState["Service"], subscriptions: SimSubscriptions["Service"]) {
  const push = yield* batchChanges<Change>(
    delivery.options,
    (batch) => dispatch(delivery, subscriptions, batch).pipe(Effect.catchCause((cause) => Effect.logError("simulator delivery failed", cause)))
  )
  const stopPresences = state.onPresenceChange((presence) => push({ _tag: "Presence", presence }))
  const stopUsers = state.onUserChange((change) => push({ _tag: "User", change }))
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      stopPresences()
      stopUsers()
    })
  )
})

/** Graph's validation handshake: the endpoint must echo the token as text/plain within the timeout. */
const validate = (options: DeliveryOptions, url: string) =>
  Effect.tryPromise(async () => {
    const token = `Validation: Testing client application reachability for subscription Request-Id: ${crypto.randomUUID()}`
    const target = `${url}${url.includes("?") ? "&" : "?"}validationToken=${encodeURIComponent(token)}`
    const response = await webhookClient.post(target, {
      headers: { "content-type": "text/plain; charset=utf-8" },
      timeoutMillis: options.validationTimeoutMillis
    })
    return response.status === 200 && response.contentType.startsWith("text/plain") && response.text === token
  }).pipe(Effect.orElseSucceed(() => false))

const sendLifecycle = Effect.fnUntraced(function*(delivery: Delivery, subscription: SimSubscription, event: string) {
  if (subscription.lifecycleNotificationUrl === null) return false
  const ok = yield* postOnce(delivery, subscription.lifecycleNotificationUrl, { value: [lifecycleItem(subscription, event)] })
  if (ok) delivery.count.lifecycleSent++
  return ok
})

const deliverNow = (delivery: Delivery, subscription: SimSubscription, direct: ReadonlyArray<DirectItem>) =>
  deliver(
    delivery,
    subscription.notificationUrl,
    direct.map(({ presence, sealedWith }) => presenceItem(sealedWith === undefined ? subscription : { ...subscription, ...sealedWith }, presence)),
    subscription.includeResourceData ? [subscription] : []
  )
