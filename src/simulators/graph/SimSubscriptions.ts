/**
 * The simulator's subscription store: creation after Graph's rules (SubscriptionRules), ownership (the app and, for
 * delegated subscriptions, the user that created it), vanishing at expiry, 404 for unknown ids. No HTTP here.
 */
import { Clock, Context, Effect, Layer } from "effect"
import { type Principal, SimHttpError } from "./SimState.ts"
import {
  badRequest,
  checkCertificate,
  checkExpiry,
  checkQuota,
  checkResource,
  type CreateSubscriptionBody,
  newSubscription,
  type SimSubscription,
  subscriptionJson,
  type UpdateSubscriptionBody
} from "./SubscriptionRules.ts"

export {
  CreateSubscriptionBody,
  DUPLICATE_PRESENCE_MESSAGE,
  MAX_PRESENCE_IDS,
  parseResource,
  PRESENCE_MAX_MINUTES,
  type SimSubscription,
  SUBSCRIPTION_QUOTA,
  UpdateSubscriptionBody,
  USERS_MAX_MINUTES
} from "./SubscriptionRules.ts"

/** The store's state: the subscriptions by id, what happened to them, and Graph's clock skew. */
interface Store {
  readonly subscriptions: Map<string, SimSubscription>
  readonly count: { created: number; deleted: number; expired: number }
  clockSkewMillis: number
}

export class SimSubscriptions extends Context.Service<SimSubscriptions, {
  /** Checks every rule except the validation handshake; returns the subscription not yet stored. */
  prepare(principal: Principal, body: CreateSubscriptionBody): Effect.Effect<SimSubscription, SimHttpError>
  store(subscription: SimSubscription): Effect.Effect<void>
  get(principal: Principal, id: string): Effect.Effect<SimSubscription, SimHttpError>
  list(principal: Principal): Effect.Effect<ReadonlyArray<SimSubscription>>
  update(principal: Principal, id: string, body: UpdateSubscriptionBody): Effect.Effect<SimSubscription, SimHttpError>
  remove(principal: Principal, id: string): Effect.Effect<void, SimHttpError>
  reauthorize(principal: Principal, id: string): Effect.Effect<void, SimHttpError>
  /** Live subscriptions (expired ones are dropped first). */
  readonly live: Effect.Effect<ReadonlyArray<SimSubscription>>
  /** Control API: find any live subscription, bypassing ownership. */
  find(id: string): Effect.Effect<SimSubscription | undefined>
  /** Control API: expire now. */
  expireNow(id: string): Effect.Effect<boolean>
  counters(): { readonly created: number; readonly deleted: number; readonly expired: number }
  /**
   * Control API: how far Graph's clock is ahead of this machine's (negative: behind). Only the expiry check reads it,
   * which is where a real skew between the connector and Graph shows: a request for exactly the maximum fails.
   */
  clockSkewMillis: number
  toJson(subscription: SimSubscription, options?: { readonly forList?: boolean }): Record<string, unknown>
}>()("teams-presence-connector/simulators/graph/SimSubscriptions") {
  static readonly layer = Layer.effect(
    SimSubscriptions,
    Effect.sync(() => {
      const store: Store = { subscriptions: new Map(), count: { created: 0, deleted: 0, expired: 0 }, clockSkewMillis: 0 }
      return SimSubscriptions.of({
        prepare: (principal, body) => prepare(store, principal, body),
        store: (subscription) => Effect.sync(() => add(store, subscription)),
        get: (principal, id) => get(store, principal, id),
        list: (principal) => purge(store).pipe(Effect.map(() => [...store.subscriptions.values()].filter((s) => ownedBy(principal, s)))),
        update: (principal, id, body) => update(store, principal, id, body),
        remove: (principal, id) => get(store, principal, id).pipe(Effect.map(() => remove(store, id))),
        reauthorize: (principal, id) => get(store, principal, id).pipe(Effect.asVoid),
        live: purge(store).pipe(Effect.map(() => [...store.subscriptions.values()])),
        find: (id) => purge(store).pipe(Effect.map(() => store.subscriptions.get(id))),
        expireNow: (id) => Effect.sync(() => expire(store, id)),
        counters: () => ({ ...store.count }),
        get clockSkewMillis() {
          return store.clockSkewMillis
        },
        set clockSkewMillis(value: number) {
          store.clockSkewMillis = value
        },
        toJson: subscriptionJson
      })
    })
  )
}

const notFound = (id: string) =>
  new SimHttpError({ status: 404, code: "ResourceNotFound", message: `The object was not found. Subscription '${id}' does not exist.` })

const ownedBy = (principal: Principal, subscription: SimSubscription) =>
  subscription.applicationId === principal.appId &&
  (principal.kind === "app" || subscription.creatorId === principal.userId)

/** Graph forgets a subscription at its expiry. */
const purge = (store: Store) =>
  Effect.map(Clock.currentTimeMillis, (now) => {
    for (const [id, subscription] of store.subscriptions) {
      if (subscription.expiresAt <= now) expire(store, id)
    }
  })

const add = (store: Store, subscription: SimSubscription) => {
  store.subscriptions.set(subscription.id, subscription)
  store.count.created++
}

const remove = (store: Store, id: string) => {
  store.subscriptions.delete(id)
  store.count.deleted++
}

const expire = (store: Store, id: string) => {
  const had = store.subscriptions.delete(id)
  if (had) store.count.expired++
  return had
}

const prepare = Effect.fnUntraced(function*(store: Store, principal: Principal, body: CreateSubscriptionBody) {
  yield* purge(store)
  const now = yield* Clock.currentTimeMillis
  const resource = yield* checkResource(principal, body)
  const expiresAt = yield* checkExpiry(resource.kind, body.expirationDateTime, now + store.clockSkewMillis)
  if ((body.clientState ?? "").length > 128) return yield* badRequest("clientState must be at most 128 characters.")
  if (body.includeResourceData === true) yield* checkCertificate(body.encryptionCertificate, body.encryptionCertificateId)
  const creatorId = yield* checkQuota(principal, resource.kind, store.subscriptions.values())
  return newSubscription(principal, body, resource, expiresAt, creatorId)
})

const get = Effect.fnUntraced(function*(store: Store, principal: Principal, id: string) {
  yield* purge(store)
  const subscription = store.subscriptions.get(id)
  if (subscription === undefined || !ownedBy(principal, subscription)) return yield* notFound(id)
  return subscription
})

const update = Effect.fnUntraced(function*(store: Store, principal: Principal, id: string, body: UpdateSubscriptionBody) {
  const subscription = yield* get(store, principal, id)
  const now = yield* Clock.currentTimeMillis
  if (body.encryptionCertificate !== undefined || body.encryptionCertificateId !== undefined) {
    yield* checkCertificate(body.encryptionCertificate, body.encryptionCertificateId)
    subscription.encryptionCertificate = body.encryptionCertificate ?? null
    subscription.encryptionCertificateId = body.encryptionCertificateId ?? null
  }
  if (body.expirationDateTime !== undefined) {
    subscription.expiresAt = yield* checkExpiry(subscription.kind, body.expirationDateTime, now + store.clockSkewMillis)
  }
  if (body.notificationUrl !== undefined) subscription.notificationUrl = body.notificationUrl
  return subscription
})
