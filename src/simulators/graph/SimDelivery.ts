/**
 * Delivers change notifications like Graph: every presence or user change is matched to the live subscriptions,
 * batched (several items per POST, grouped by notificationUrl), rich items encrypted and signed validation tokens
 * added; a POST not answered 2xx within 3 s is not delivered (retried); the endpoint's answers are measured (> 2.9 s
 * is slow; after 100 POSTs, ≥ 10 % slow in 10 min → delayed, ≥ 15 % → dropped; docs/protocol-notes.md). Faults
 * (drop, duplicate, reorder, silent subscriptions) and lifecycle events come from the control API.
 */
import { Clock, Context, Effect, Layer, PubSub } from "effect"
import { batchChanges } from "./SimBatches.ts"
import { EndpointWindow, type EndpointStats } from "./SimEndpoints.ts"
import { SimJwks } from "./SimJwks.ts"
import { lifecycleItem, type NotificationItem, presenceItem, userItem } from "./notify/payloads.ts"
import { type SimPresence, SimState, type UserChange } from "./SimState.ts"
import { type SimSubscription, SimSubscriptions } from "./SimSubscriptions.ts"
import { webhookClient } from "./SimWebhookClient.ts"

export interface DeliveryOptions {
  /** Items are collected this long (or up to `maxBatch`) before a POST. */
  readonly batchWindowMillis: number
  readonly maxBatch: number
  /** Graph's HTTP client gives up after 3 s: a POST not answered by then is not delivered. */
  readonly answerTimeoutMillis: number
  readonly slowMillis: number
  /** POSTs counted before an endpoint's share of slow answers can delay or drop its notifications. */
  readonly minSamples: number
  readonly windowMillis: number
  /** How long Graph holds back notifications for a "delayed" endpoint (10 min). */
  readonly delayMillis: number
  readonly retries: number
  readonly retryBaseMillis: number
  readonly validationTimeoutMillis: number
}

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

export type DeliveryCounters = Readonly<Delivery["count"]>

export interface DirectItem {
  readonly presence: SimPresence
  readonly sealedWith?: { readonly encryptionCertificate: string; readonly encryptionCertificateId: string }
}

type Change = { readonly _tag: "Presence"; readonly presence: SimPresence } | { readonly _tag: "User"; readonly change: UserChange }

type Entry = { readonly item: NotificationItem; readonly subscription: SimSubscription }

/** The delivery's state: its options, the faults the control API sets, the endpoints' samples and the counters. */
interface Delivery {
  readonly options: DeliveryOptions
  readonly jwks: SimJwks["Service"]
  readonly faults: DeliveryFaults
  readonly endpoints: Map<string, EndpointWindow>
  readonly count: { posts: number; itemsDelivered: number; itemsDropped: number; lifecycleSent: number }
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
          options: { ...defaultDeliveryOptions, ...partial },
          jwks: yield* SimJwks,
          faults: { drop: 0, duplicate: 0, reorder: 0 },
          endpoints: new Map(),
          count: { posts: 0, itemsDelivered: 0, itemsDropped: 0, lifecycleSent: 0 }
        }
        yield* followChanges(delivery, yield* SimState, yield* SimSubscriptions)
        return SimDelivery.of({
          faults: delivery.faults,
          validate: (url) => validate(delivery.options, url),
          sendLifecycle: (subscription, event) => sendLifecycle(delivery, subscription, event),
          deliverNow: (subscription, direct) => deliverNow(delivery, subscription, direct),
          endpoints: () => [...delivery.endpoints.keys()].map((url) => stats(delivery, url, Date.now())),
          counters: () => ({ ...delivery.count })
        })
      })
    )

  static readonly layer = SimDelivery.layerWith()
}

/** An endpoint's recent POSTs: slow ones decide whether Graph delays or drops its notifications. */
const endpointOf = (delivery: Delivery, url: string): EndpointWindow => {
  let endpoint = delivery.endpoints.get(url)
  if (endpoint === undefined) {
    endpoint = new EndpointWindow()
    delivery.endpoints.set(url, endpoint)
  }
  return endpoint
}

const stats = (delivery: Delivery, url: string, now: number): EndpointStats => endpointOf(delivery, url).stats(url, now, delivery.options)

/** One POST with Graph's timing; returns whether it was answered 2xx. */
const postOnce = Effect.fnUntraced(function*(delivery: Delivery, url: string, body: unknown) {
  const started = yield* Clock.currentTimeMillis
  // A callback rather than a promise effect: no abort signal per POST (the client has its own timeout).
  const ok = yield* Effect.callback<boolean>((resume) => {
    webhookClient.post(url, {
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      timeoutMillis: delivery.options.answerTimeoutMillis
    }).then(
      (response) => resume(Effect.succeed(response.status >= 200 && response.status < 300)),
      () => resume(Effect.succeed(false))
    )
  })
  const ended = yield* Clock.currentTimeMillis
  endpointOf(delivery, url).record(ended, ended - started > delivery.options.slowMillis, !ok)
  delivery.count.posts++
  return ok
})

/** One batch for one endpoint, with the validation tokens of its rich items, retried with backoff. */
const deliver = Effect.fnUntraced(function*(
  delivery: Delivery,
  url: string,
  items: ReadonlyArray<NotificationItem>,
  rich: ReadonlyArray<SimSubscription>
) {
  const { count, options } = delivery
  const endpoint = stats(delivery, url, yield* Clock.currentTimeMillis)
  if (endpoint.state === "dropped") {
    count.itemsDropped += items.length
    return false
  }
  if (endpoint.state === "delayed") yield* Effect.sleep(options.delayMillis)
  const pairs = rich.length === 1 ? rich : [...new Map(rich.map((s) => [`${s.applicationId}|${s.tenantId}`, s] as const)).values()]
  const validationTokens = yield* Effect.forEach(pairs, (s) => delivery.jwks.validationToken(s.applicationId, s.tenantId))
  const body = validationTokens.length > 0 ? { value: items, validationTokens } : { value: items }
  for (let attempt = 0; attempt <= options.retries; attempt++) {
    if (yield* postOnce(delivery, url, body)) {
      count.itemsDelivered += items.length
      return true
    }
    yield* Effect.sleep(options.retryBaseMillis * 2 ** attempt)
  }
  count.itemsDropped += items.length
  return false
})

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

/**
 * A batch of changes: their items, the faults, then one POST per endpoint, each in a fiber of its own (forked, so
 * that the next batch does not wait for the answers).
 */
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
    const rich = entries.filter((e) => e.subscription.includeResourceData).map((e) => e.subscription)
    yield* Effect.forkDetach(deliver(delivery, url, entries.map((e) => e.item), rich).pipe(
      Effect.catchCause((cause) => Effect.logError("simulator delivery failed", cause))
    ))
  }
})

/** Presence and user changes, batched like Graph's (SimBatches.ts); subscribed at once, so no change published after it is missed. */
const followChanges = Effect.fnUntraced(function*(delivery: Delivery, state: SimState["Service"], subscriptions: SimSubscriptions["Service"]) {
  const presences = yield* PubSub.subscribe(state.presenceChanges)
  const users = yield* PubSub.subscribe(state.userChanges)
  yield* batchChanges<Change>(
    [
      Effect.map(PubSub.takeAll(presences), (all) => all.map((presence): Change => ({ _tag: "Presence", presence }))),
      Effect.map(PubSub.takeAll(users), (all) => all.map((change): Change => ({ _tag: "User", change })))
    ],
    delivery.options,
    (batch) => dispatch(delivery, subscriptions, batch).pipe(Effect.catchCause((cause) => Effect.logError("simulator delivery failed", cause)))
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
