/**
 * The webhook of a tenant on a runner that does not serve it (docs/scaling.md, "Graph notifications on any runner"):
 * the POST is decoded, each item checked against the tenant's subscriptions as the store holds them (subscriptionId and
 * clientState, in constant time: Intake.ts's KnownSubscriptions), and what passes is handed to the owner through the
 * store (GraphHandoff.ts). Graph gets 202 as soon as the row is committed — whether the tenant has an owner at that
 * moment or not — or after at most 1 s while the runner keeps trying to store it; 400 for a body that is not a
 * notification collection; 503 when the store refused it at once.
 */
import { Cause, Clock, type Duration, Effect, Exit, Fiber, Option, Schedule } from "effect"
import { KnownSubscriptions } from "../graph/notifications/Intake.ts"
import { decodeChangeNotifications, decodeLifecycleNotifications } from "../graph/notifications/Notifications.ts"
import { logRejected, makeRejections } from "../graph/notifications/Rejections.ts"
import type { StateStore, SubscriptionState, TenantId } from "../state/StateStore.ts"
import { describeCause } from "../state/StateStoreError.ts"
import type { GraphHandoff, HandoffBody, HandoffKind } from "./GraphHandoff.ts"

/** A tenant's subscriptions are read again when an item names one not known, at most this often. */
const reloadAfterMillis = 1000
/** Graph's answer waits at most this long for the handed-over row to be stored. */
const defaultAnswerWithin = "1 second"
/** One put that takes longer is given up and tried again, for at most `keepTrying` in all. */
const putTimeout = "3 seconds"
const keepTrying = "30 seconds"

export interface HandoffAnswer {
  readonly status: number
  readonly text: string
}

const knownOf = (state: SubscriptionState | undefined): KnownSubscriptions => {
  const known = new KnownSubscriptions()
  for (const shard of state?.shards ?? []) {
    const live = shard.subscription
    if (live !== undefined) known.register({ id: live.subscriptionId, kind: "presence", key: shard.key, clientState: live.clientState })
  }
  const users = state?.users
  if (users !== undefined) known.register({ id: users.subscriptionId, kind: "users", key: "users", clientState: users.clientState })
  return known
}

type Item = { readonly subscriptionId: string; readonly clientState?: string | null | undefined }

/** The check of items against a tenant's subscriptions in the store (cached per tenant). */
const makeSubscriptionCheck = (store: StateStore["Service"]) => {
  const cache = new Map<TenantId, { readonly loadedAt: number; readonly known: KnownSubscriptions }>()

  /** The tenant's subscriptions from the store; read again when `stale` and the last read is older than a second. */
  const subscriptionsOf = Effect.fnUntraced(function*(tenant: TenantId, stale: boolean) {
    const now = yield* Clock.currentTimeMillis
    const cached = cache.get(tenant)
    if (cached !== undefined && (!stale || now - cached.loadedAt < reloadAfterMillis)) return cached.known
    const state = yield* store.subscriptions.load(tenant)
    const known = knownOf(state._tag === "Some" ? state.value : undefined)
    cache.set(tenant, { loadedAt: now, known })
    return known
  })

  /** The items whose subscriptionId and clientState match the tenant's subscriptions; the others are logged. */
  const checked = Effect.fnUntraced(function*<A extends Item>(tenant: TenantId, items: ReadonlyArray<A>) {
    let known = yield* subscriptionsOf(tenant, false)
    if (items.some((item) => !known.check(item.subscriptionId, item.clientState).ok)) known = yield* subscriptionsOf(tenant, true)
    const rejections = makeRejections()
    const accepted = items.filter((item) => {
      const result = known.check(item.subscriptionId, item.clientState)
      if (!result.ok) {
        rejections.add(result.reason, "subscriptionId or clientState does not match a subscription of this tenant", {
          subscriptionId: item.subscriptionId,
          tenant
        })
      }
      return result.ok
    })
    yield* rejections.report(items.length, " (checked by a runner that hands them to the tenant's owner)")
    return accepted
  })

  return checked
}

export const makeHandoffIntake = (
  store: StateStore["Service"],
  handoff: GraphHandoff,
  /** How long Graph's answer waits for the row (tests wait for it whatever it takes). */
  answerWithin: Duration.Input = defaultAnswerWithin
) => {
  const checked = makeSubscriptionCheck(store)

  /** The batch into the store, tried again until it is in or `keepTrying` is over. */
  const put = (tenant: TenantId, kind: HandoffKind, body: HandoffBody) =>
    handoff.put(tenant, kind, body).pipe(
      Effect.timeout(putTimeout),
      Effect.retry({ schedule: Schedule.spaced("500 millis") }),
      Effect.timeout(keepTrying),
      Effect.tapCause((cause) =>
        Effect.logError(`cluster: ${body.value.length} notification items for ${tenant} could not be stored for its owner (${describeCause(Cause.squash(cause))}); the owner's reconciliation corrects what they carried`)
      )
    )

  /** The number of items handed over, or undefined for a body that is not a notification collection. */
  const hand = Effect.fnUntraced(function*(tenant: TenantId, kind: HandoffKind, json: unknown) {
    if (kind === "lifecycle") {
      const body = decodeLifecycleNotifications(json)
      if (Exit.isFailure(body)) return undefined
      const value = yield* checked(tenant, body.value.value)
      if (value.length > 0) yield* put(tenant, kind, { value })
      return value.length
    }
    const body = decodeChangeNotifications(json)
    if (Exit.isFailure(body)) return undefined
    const value = yield* checked(tenant, body.value.value)
    const tokens = body.value.validationTokens
    if (value.length > 0) yield* put(tenant, kind, tokens === undefined ? { value } : { value, validationTokens: tokens })
    return value.length
  })

  /**
   * Checks and hands over one POST's body (JSON, already read within the tenant's size limit). Graph's answer waits for
   * the row at most `answerWithin`: a store that is slower gets the batch later (the runner keeps trying), Graph gets
   * its 202 now — a slow answer would make Graph delay and then drop the tenant's notifications altogether.
   */
  const receive = (tenant: TenantId, kind: HandoffKind, json: unknown): Effect.Effect<HandoffAnswer> =>
    Effect.gen(function*() {
      const fiber = yield* hand(tenant, kind, json).pipe(Effect.forkDetach)
      const done = yield* Fiber.await(fiber).pipe(Effect.timeoutOption(answerWithin))
      if (Option.isNone(done)) return { status: 202, text: "" }
      const exit = done.value
      if (Exit.isFailure(exit)) return { status: 503, text: "the state store cannot take the notifications now" }
      if (exit.value !== undefined) return { status: 202, text: "" }
      yield* logRejected("malformed", `body is not a ${kind} notification collection`, { tenant })
      return { status: 400, text: "not a notification collection" }
    }).pipe(Effect.withSpan("HandoffIntake.receive", { attributes: { tenant, kind } }))

  return { receive }
}
