/**
 * The presence subscriptions, one per shard (≤ 650 users, one delegated account each): how a shard's subscription is
 * created for its licensed users, renewed (PATCHing in a new certificate when there is one), recreated, dropped and
 * how a lifecycle event is answered; and how a new plan of shards is applied. The SubscriptionManager runs every step
 * under its lock. A shard's fields change in place; its status is what the status page shows.
 */
import { Clock, Effect, PubSub, Redacted } from "effect"
import * as crypto from "node:crypto"
import { accountRef, type CredentialRef } from "../client/GraphSettings.ts"
import type { LifecycleSignal, NotificationsInbox } from "../notifications/NotificationsInbox.ts"
import {
  type CreateSubscription,
  describeError,
  isAlreadyExists,
  isNotFound,
  presenceResource,
  type SubscriptionApi,
  type SubscriptionCallError
} from "./SubscriptionApi.ts"
import type { CertificateRotation } from "./SubscriptionCertificates.ts"
import { withExpiryRetry } from "./SubscriptionExpiry.ts"
import { type LicenceCheck, permittedUsers } from "./SubscriptionLicenceCheck.ts"
import { notificationUrls, type SubscriptionSettingsOptions } from "./SubscriptionSettings.ts"
import { planShards, sameMembers } from "./SubscriptionShards.ts"
import { countFailure, countRenewal, type Live, minutes, type Shard } from "./SubscriptionState.ts"

/** What the shard steps work with: the manager's services, its shards, and where it shows and announces results. */
export interface ShardContext {
  readonly settings: SubscriptionSettingsOptions
  /** The delegated accounts, in configuration order. */
  readonly accounts: ReadonlyArray<string>
  readonly api: SubscriptionApi["Service"]
  readonly inbox: NotificationsInbox["Service"]
  readonly licence: LicenceCheck["Service"]
  readonly certificate: CertificateRotation
  /** The shards of the last plan (replaced by the next one). */
  readonly book: { shards: Array<Shard> }
  /** Publishes the state at once, for what the status page should show before the step ends. */
  readonly showState: Effect.Effect<void>
  /** Users whose presences must be read again (a new subscription, `missed`, …). */
  readonly resyncs: PubSub.PubSub<ReadonlyArray<string>>
}

const register = (ctx: ShardContext, live: Live, key: string) =>
  ctx.inbox.register({ id: live.subscriptionId, kind: "presence", key, clientState: live.clientState })

/** Registers the clientStates of the subscriptions a previous run left (the first renewal then verifies them). */
export const registerAdopted = Effect.fnUntraced(function*(ctx: ShardContext) {
  for (const shard of ctx.book.shards) if (shard.live !== undefined) yield* register(ctx, shard.live, shard.key)
})

/** Deletes stale presence subscriptions of this account that the connector does not know (the 409 case). */
const clearStale = Effect.fn("PresenceShards.clearStale")(function*(ctx: ShardContext, credential: CredentialRef) {
  const existing = yield* ctx.api.list(credential)
  for (const stale of existing.filter((s) => s.resource.toLowerCase().includes("communications/presences"))) {
    yield* Effect.logWarning("deleting a stale presence subscription of this account").pipe(Effect.annotateLogs({ subscriptionId: stale.id }))
    yield* ctx.api.remove(credential, stale.id).pipe(Effect.catchIf(isNotFound, () => Effect.void))
  }
})

const createWithRetry = (ctx: ShardContext, credential: CredentialRef, body: CreateSubscription) =>
  ctx.api.create(credential, body).pipe(
    Effect.catchIf(isAlreadyExists, () => clearStale(ctx, credential).pipe(Effect.andThen(ctx.api.create(credential, body))))
  )

/** Forgets the shard's subscription and deletes it at Graph (gone already is fine). */
export const dropShard = Effect.fn("PresenceShards.drop")(function*(ctx: ShardContext, shard: Shard) {
  if (shard.live === undefined || shard.account === undefined) return
  const id = shard.live.subscriptionId
  shard.live = undefined
  yield* ctx.inbox.unregister(id)
  yield* ctx.api.remove(accountRef(shard.account), id).pipe(
    Effect.catch((error) => (isNotFound(error) ? Effect.void : Effect.logWarning(`could not delete subscription ${id}: ${describeError(error)}`)))
  )
})

/**
 * The users a new subscription of the shard may name: `checked` when a check just permitted them, else the licensed
 * ones now. None leaves the shard without a subscription, which while licences are not known yet is a wait.
 */
const permittedForCreate = Effect.fnUntraced(function*(ctx: ShardContext, shard: Shard, checked: ReadonlyArray<string> | undefined) {
  const answers = checked === undefined ? yield* ctx.licence.check(shard.userIds) : undefined
  const permitted = checked ?? permittedUsers(shard.userIds, answers!, [])
  if (permitted.length > 0) return permitted
  const waiting = answers !== undefined && shard.userIds.some((id) => answers.get(id) === "unknown")
  shard.status = waiting ? "waiting" : "active"
  shard.error = waiting ? "waiting for the PBX to confirm the users' licences" : undefined
  return undefined
})

/** Creates the shard's subscription for the licensed users; `checked`: the users a check just permitted. */
export const createShard = Effect.fn("PresenceShards.create")(function*(ctx: ShardContext, shard: Shard, checked?: ReadonlyArray<string>) {
  if (shard.account === undefined) {
    shard.status = "needsAccount"
    shard.error = `${shard.userIds.length} users need another technical account: one presence subscription per ` +
      `delegated account holds at most ${ctx.settings.maxUsersPerShard} users`
    return
  }
  const permitted = yield* permittedForCreate(ctx, shard, checked)
  if (permitted === undefined) return
  shard.status = "creating"
  yield* ctx.showState
  const now = yield* Clock.currentTimeMillis
  const clientState = crypto.randomBytes(32).toString("base64url")
  const named = yield* ctx.certificate.forNewSubscription.pipe(Effect.result)
  if (named._tag === "Failure") {
    shard.status = "error"
    shard.error = `cannot create the presence subscription: ${named.failure.message}`
    return yield* Effect.logError(shard.error).pipe(Effect.annotateLogs({ shard: shard.key }))
  }
  const encryption = named.success
  const urls = notificationUrls(ctx.settings)
  const body = (expirationDateTime: string): CreateSubscription => ({
    changeType: "updated",
    notificationUrl: urls.notificationUrl,
    lifecycleNotificationUrl: urls.lifecycleNotificationUrl,
    resource: presenceResource(permitted),
    expirationDateTime,
    clientState,
    includeResourceData: encryption !== undefined,
    ...(encryption !== undefined ? { encryptionCertificate: encryption.certificate, encryptionCertificateId: encryption.id } : {})
  })
  const account = accountRef(shard.account)
  const withdraw = yield* ctx.inbox.expect({ kind: "presence", key: shard.key, clientState: Redacted.make(clientState) })
  const created = yield* withExpiryRetry({ ...expiryOf(ctx), what: "creating" }, (at) => createWithRetry(ctx, account, body(at))).pipe(
    Effect.result,
    Effect.ensuring(withdraw)
  )
  if (created._tag === "Failure") {
    shard.status = "error"
    shard.error = `creating the presence subscription failed: ${describeError(created.failure)}`
    yield* countFailure("presence", created.failure)
    return yield* Effect.logError(shard.error).pipe(Effect.annotateLogs({ shard: shard.key }))
  }
  shard.live = {
    subscriptionId: created.success.id,
    clientState: Redacted.make(clientState),
    expiresAt: Date.parse(created.success.expirationDateTime) || now + minutes(ctx.settings.presenceExpiryMinutes),
    subscribedIds: permitted,
    ...(encryption !== undefined ? { certificateId: encryption.id } : {})
  }
  yield* register(ctx, shard.live, shard.key)
  markRenewed(shard, now)
  yield* Effect.logInfo(`presence subscription created for ${permitted.length} users`).pipe(
    Effect.annotateLogs({ shard: shard.key, subscriptionId: created.success.id })
  )
  yield* PubSub.publish(ctx.resyncs, permitted)
})

const expiryOf = (ctx: ShardContext) => ({
  expiryMinutes: ctx.settings.presenceExpiryMinutes,
  renewMinutes: ctx.settings.presenceRenewMinutes
})

const markRenewed = (shard: Shard, now: number) => {
  shard.lastRenewalAt = now
  shard.status = "active"
  shard.error = undefined
}

export const recreateShard = Effect.fn("PresenceShards.recreate")(function*(ctx: ShardContext, shard: Shard, checked?: ReadonlyArray<string>) {
  yield* dropShard(ctx, shard)
  yield* createShard(ctx, shard, checked)
})

/**
 * Renews the shard's subscription after a licence check: recreated when its users changed, created when it has none,
 * recreated when Graph answers 404, else marked red with the reason.
 */
export const renewShard = Effect.fn("PresenceShards.renew")(function*(ctx: ShardContext, shard: Shard): Effect.fn.Return<void> {
  if (shard.account === undefined || shard.live === undefined) return yield* createShard(ctx, shard)
  // Unknown answers keep the users the subscription holds: a check that cannot decide never empties it.
  const permitted = permittedUsers(shard.userIds, yield* ctx.licence.check(shard.userIds), shard.live.subscribedIds)
  if (!sameMembers(permitted, shard.live.subscribedIds)) return yield* recreateShard(ctx, shard, permitted)
  const now = yield* Clock.currentTimeMillis
  const replace = yield* ctx.certificate.replacementFor(shard.live.certificateId)
  const { account, live } = { account: accountRef(shard.account), live: shard.live }
  const answer = yield* withExpiryRetry({ ...expiryOf(ctx), what: "renewing" }, (expirationDateTime) =>
    ctx.api.renew(account, live.subscriptionId, {
      expirationDateTime,
      ...(replace !== undefined ? { encryptionCertificate: replace.certificate, encryptionCertificateId: replace.id } : {})
    })).pipe(Effect.result)
  if (answer._tag === "Success") {
    shard.live = {
      ...shard.live,
      expiresAt: Date.parse(answer.success.expirationDateTime) || now,
      ...(replace !== undefined ? { certificateId: replace.id } : {})
    }
    if (replace !== undefined) {
      yield* Effect.logInfo("presence subscription now names the new certificate").pipe(
        Effect.annotateLogs({ shard: shard.key, certificateId: replace.id })
      )
    }
    markRenewed(shard, now)
    return yield* countRenewal("presence")
  }
  yield* countFailure("presence", answer.failure)
  if (isNotFound(answer.failure)) {
    yield* Effect.logWarning("presence subscription vanished (404); recreating it").pipe(Effect.annotateLogs({ shard: shard.key }))
    return yield* recreateShard(ctx, shard)
  }
  shard.status = "error"
  shard.error = `renewal failed: ${describeError(answer.failure)}`
  yield* Effect.logError(shard.error).pipe(Effect.annotateLogs({ shard: shard.key }))
})

export const renewAll = Effect.fn("PresenceShards.renewAll")(function*(ctx: ShardContext) {
  for (const shard of ctx.book.shards) yield* renewShard(ctx, shard)
})

/** A lifecycle event of a presence subscription: `missed` → resync, removed → create again, else reauthorize + renew. */
export const onShardLifecycle = Effect.fn("PresenceShards.onLifecycle")(function*(ctx: ShardContext, signal: LifecycleSignal) {
  const shard = ctx.book.shards.find((s) => s.live?.subscriptionId === signal.subscriptionId)
  if (shard === undefined || shard.account === undefined || shard.live === undefined) return
  if (signal.event === "missed") return yield* PubSub.publish(ctx.resyncs, shard.live.subscribedIds)
  if (signal.event === "subscriptionRemoved") {
    yield* ctx.inbox.unregister(shard.live.subscriptionId)
    shard.live = undefined
    return yield* createShard(ctx, shard)
  }
  const reauthorized = yield* ctx.api.reauthorize(accountRef(shard.account), shard.live.subscriptionId).pipe(Effect.result)
  if (reauthorized._tag === "Failure" && isNotFound(reauthorized.failure as SubscriptionCallError)) return yield* recreateShard(ctx, shard)
  yield* renewShard(ctx, shard)
})

/**
 * Plans the shards for `userIds` (sticky, SubscriptionShards.ts) and brings each subscription in line: created,
 * recreated when its users changed, dropped when its shard is gone.
 */
export const applyPlan = Effect.fn("PresenceShards.applyPlan")(function*(ctx: ShardContext, userIds: ReadonlyArray<string>) {
  const current = ctx.book.shards
  const plan = planShards(
    current.filter((s) => s.account !== undefined).map((s) => ({ key: s.key, account: s.account, userIds: s.userIds })),
    userIds,
    ctx.accounts,
    ctx.settings.maxUsersPerShard
  )
  const next: Array<Shard> = []
  for (const planned of plan) {
    const previous = current.find((s) => s.key === planned.key)
    const shard: Shard = previous ?? {
      key: planned.key,
      account: planned.account,
      userIds: planned.userIds,
      live: undefined,
      lastRenewalAt: undefined,
      status: "creating",
      error: undefined
    }
    const changed = previous === undefined || !sameMembers(previous.userIds, planned.userIds)
    shard.userIds = planned.userIds
    next.push(shard)
    // A change the live subscription already reflects (its users left after a licence check) needs no call.
    const reflected = shard.live !== undefined && sameMembers(planned.userIds, shard.live.subscribedIds)
    if (shard.account === undefined) yield* createShard(ctx, shard)
    else if (changed && !reflected) yield* recreateShard(ctx, shard)
    else if (shard.live === undefined) yield* createShard(ctx, shard)
  }
  for (const gone of current.filter((s) => !plan.some((p) => p.key === s.key))) yield* dropShard(ctx, gone)
  ctx.book.shards = next
})
