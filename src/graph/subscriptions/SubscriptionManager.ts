/**
 * Owns the connector's Graph subscriptions: presence subscriptions sharded over the delegated accounts (≤ 650 users
 * each), renewed every `presenceRenewMinutes`; the users subscription (SubscriptionUsers.ts); lifecycle events;
 * 404 → recreate + resync; 409 ExtensionError → delete the stale one and retry. Its state is persisted in the data
 * directory (adopted at restart, SubscriptionState.ts) and published as a SubscriptionRef for the status page; the
 * rich-notification certificate is rotated by SubscriptionCertificates.ts. Every step runs under one lock.
 */
import { Clock, Context, Deferred, Effect, Layer, PubSub, Redacted, Semaphore, Stream, SubscriptionRef } from "effect"
import * as crypto from "node:crypto"
import { teamsKey } from "../../domain/TeamsId.ts"
import { accountRef, type CredentialRef, GraphConfig } from "../client/GraphSettings.ts"
import { type LifecycleSignal, NotificationsInbox } from "../notifications/NotificationsInbox.ts"
import {
  type CreateSubscription,
  describeError,
  isAlreadyExists,
  isNotFound,
  presenceResource,
  SubscriptionApi,
  type SubscriptionCallError
} from "./SubscriptionApi.ts"
import { every } from "../presence/PollSchedule.ts"
import { makeCertificateRotation } from "./SubscriptionCertificates.ts"
import { withExpiryRetry } from "./SubscriptionExpiry.ts"
import { LicenceCheck, permittedUsers } from "./SubscriptionLicenceCheck.ts"
import { notificationUrls, SubscriptionSettings } from "./SubscriptionSettings.ts"
import { planShards, sameMembers } from "./SubscriptionShards.ts"
import {
  adopt,
  countFailure,
  countRenewal,
  type Live,
  makePersister,
  minutes,
  type Shard,
  shardStatus,
  type SubscriptionsState,
  toPersisted
} from "./SubscriptionState.ts"
import { makeUsersSubscription } from "./SubscriptionUsers.ts"

export type {
  CertificateStatus,
  ShardStatus,
  ShardStatusKind,
  SubscriptionsState,
  UsersSubscriptionStatus
} from "./SubscriptionState.ts"

export class SubscriptionManager extends Context.Service<SubscriptionManager, {
  setDesiredUsers(userIds: ReadonlyArray<string>): Effect.Effect<void>
  readonly state: SubscriptionRef.SubscriptionRef<SubscriptionsState>
  /** User ids whose presences must be re-read (after a recreate, `missed`, …): the reconciler listens. */
  readonly resyncs: Stream.Stream<ReadonlyArray<string>>
  /** The users the live presence subscriptions hold (keyed by `teamsKey`), adopted ones included. */
  readonly held: Effect.Effect<ReadonlySet<string>>
  /** Renews every presence subscription now (the timer does this every presenceRenewMinutes). */
  readonly renewPresence: Effect.Effect<void>
  readonly renewUsers: Effect.Effect<void>
  /**
   * New certificate now, PATCHed into every presence subscription; the old key is retired once no subscription names
   * it and the grace period has passed. (The expiry check does this by itself before the certificate expires.)
   */
  readonly rotateCertificate: Effect.Effect<void>
}>()("teams-presence-connector/graph/subscriptions/SubscriptionManager") {
  static readonly layer = Layer.effect(
    SubscriptionManager,
    Effect.gen(function*() {
      const settings = yield* SubscriptionSettings
      const graph = yield* GraphConfig
      const api = yield* SubscriptionApi
      const inbox = yield* NotificationsInbox
      const licence = yield* LicenceCheck
      const urls = notificationUrls(settings)
      const expiry = { expiryMinutes: settings.presenceExpiryMinutes, renewMinutes: settings.presenceRenewMinutes }
      const accounts = graph.accounts.map((a) => a.name)
      const lock = yield* Semaphore.make(1)
      const ready = yield* Deferred.make<void>()
      const resyncs = yield* PubSub.unbounded<ReadonlyArray<string>>()

      const adopted = yield* adopt(settings.dataDir, accounts)
      let shards: Array<Shard> = adopted.shards
      const users = yield* makeUsersSubscription(adopted.users)
      const certificate = yield* makeCertificateRotation({ shards: () => shards, renewShard: (shard) => renewShard(shard) })
      const state = yield* SubscriptionRef.make<SubscriptionsState>({ shards: [], users: { status: users.status().status } })
      const persister = yield* makePersister(settings.dataDir)

      const snapshot = (): SubscriptionsState => {
        const current = certificate.status()
        return { shards: shards.map(shardStatus), users: users.status(), ...(current !== undefined ? { certificate: current } : {}) }
      }
      const publish = Effect.gen(function*() {
        yield* SubscriptionRef.set(state, snapshot())
        yield* persister.offer(toPersisted(shards, users.persisted()))
      })

      const register = (live: Live, key: string) =>
        inbox.register({ id: live.subscriptionId, kind: "presence", key, clientState: Redacted.make(live.clientState) })

      /** Deletes stale presence subscriptions of this account that the connector does not know (the 409 case). */
      const clearStale = Effect.fnUntraced(function*(credential: CredentialRef) {
        const existing = yield* api.list(credential)
        for (const stale of existing.filter((s) => s.resource.toLowerCase().includes("communications/presences"))) {
          yield* Effect.logWarning("deleting a stale presence subscription of this account").pipe(
            Effect.annotateLogs({ subscriptionId: stale.id })
          )
          yield* api.remove(credential, stale.id).pipe(Effect.catchIf(isNotFound, () => Effect.void))
        }
      })

      const createWithRetry = (credential: CredentialRef, body: CreateSubscription) =>
        api.create(credential, body).pipe(
          Effect.catchIf(isAlreadyExists, () => clearStale(credential).pipe(Effect.andThen(api.create(credential, body))))
        )

      const dropSubscription = Effect.fnUntraced(function*(shard: Shard) {
        if (shard.live === undefined || shard.account === undefined) return
        const id = shard.live.subscriptionId
        shard.live = undefined
        yield* inbox.unregister(id)
        yield* api.remove(accountRef(shard.account), id).pipe(
          Effect.catch((error) =>
            isNotFound(error) ? Effect.void : Effect.logWarning(`could not delete subscription ${id}: ${describeError(error)}`)
          )
        )
      })

      /** Creates the shard's subscription for the licensed users; `checked`: the users a check just permitted. */
      const createShard = Effect.fnUntraced(function*(shard: Shard, checked?: ReadonlyArray<string>) {
        if (shard.account === undefined) {
          shard.status = "needsAccount"
          shard.error = `${shard.userIds.length} users need another technical account: one presence subscription per ` +
            `delegated account holds at most ${settings.maxUsersPerShard} users`
          return
        }
        const answers = checked === undefined ? yield* licence.check(shard.userIds) : undefined
        const permitted = checked ?? permittedUsers(shard.userIds, answers!, [])
        if (permitted.length === 0) {
          // Nobody to subscribe; while licences are not known yet that is a wait, not a decision.
          const waiting = answers !== undefined && shard.userIds.some((id) => answers.get(id) === "unknown")
          shard.status = waiting ? "waiting" : "active"
          shard.error = waiting ? "waiting for the PBX to confirm the users' licences" : undefined
          return
        }
        shard.status = "creating"
        yield* SubscriptionRef.set(state, snapshot())
        const now = yield* Clock.currentTimeMillis
        const clientState = crypto.randomBytes(32).toString("base64url")
        const named = yield* certificate.forNewSubscription.pipe(Effect.result)
        if (named._tag === "Failure") {
          shard.status = "error"
          shard.error = `cannot create the presence subscription: ${named.failure.message}`
          return yield* Effect.logError(shard.error).pipe(Effect.annotateLogs({ shard: shard.key }))
        }
        const encryption = named.success
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
        const withdraw = yield* inbox.expect({ kind: "presence", key: shard.key, clientState: Redacted.make(clientState) })
        const created = yield* withExpiryRetry({ ...expiry, what: "creating" }, (at) => createWithRetry(account, body(at))).pipe(
          Effect.result,
          Effect.ensuring(withdraw)
        )
        if (created._tag === "Failure") {
          shard.status = "error"
          shard.error = `creating the presence subscription failed: ${describeError(created.failure)}`
          yield* countFailure("presence", created.failure)
          yield* Effect.logError(shard.error).pipe(Effect.annotateLogs({ shard: shard.key }))
          return
        }
        shard.live = {
          subscriptionId: created.success.id,
          clientState,
          expiresAt: Date.parse(created.success.expirationDateTime) || now + minutes(settings.presenceExpiryMinutes),
          subscribedIds: permitted,
          ...(encryption !== undefined ? { certificateId: encryption.id } : {})
        }
        yield* register(shard.live, shard.key)
        shard.status = "active"
        shard.error = undefined
        shard.lastRenewalAt = now
        yield* Effect.logInfo(`presence subscription created for ${permitted.length} users`).pipe(
          Effect.annotateLogs({ shard: shard.key, subscriptionId: created.success.id })
        )
        yield* PubSub.publish(resyncs, permitted)
      })

      const recreate = Effect.fnUntraced(function*(shard: Shard, checked?: ReadonlyArray<string>) {
        yield* dropSubscription(shard)
        yield* createShard(shard, checked)
      })

      // Typed: the certificate rotation calls it back, so its type cannot be inferred.
      const renewShard: (shard: Shard) => Effect.Effect<void> = Effect.fnUntraced(function*(shard: Shard) {
        if (shard.account === undefined) return yield* createShard(shard)
        if (shard.live === undefined) return yield* createShard(shard)
        // Unknown answers keep the users the subscription holds: a check that cannot decide never empties it.
        const permitted = permittedUsers(shard.userIds, yield* licence.check(shard.userIds), shard.live.subscribedIds)
        if (!sameMembers(permitted, shard.live.subscribedIds)) return yield* recreate(shard, permitted)
        const now = yield* Clock.currentTimeMillis
        const replace = yield* certificate.replacementFor(shard.live.certificateId)
        const { account, live } = { account: accountRef(shard.account), live: shard.live }
        const answer = yield* withExpiryRetry({ ...expiry, what: "renewing" }, (expirationDateTime) =>
          api.renew(account, live.subscriptionId, {
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
          shard.lastRenewalAt = now
          shard.status = "active"
          shard.error = undefined
          return yield* countRenewal("presence")
        }
        yield* countFailure("presence", answer.failure)
        if (isNotFound(answer.failure)) {
          yield* Effect.logWarning("presence subscription vanished (404); recreating it").pipe(Effect.annotateLogs({ shard: shard.key }))
          return yield* recreate(shard)
        }
        shard.status = "error"
        shard.error = `renewal failed: ${describeError(answer.failure)}`
        yield* Effect.logError(shard.error).pipe(Effect.annotateLogs({ shard: shard.key }))
      })

      /**
       * Looks each live presence subscription up (GET, cheap): one that Graph deleted or let expire answers 404. The
       * shard turns red with the reason (published at once, so the status page shows it) and is recreated, which
       * also re-reads its users' presences. Other failures are left to the next look or renewal.
       */
      const verifyShard = Effect.fnUntraced(function*(shard: Shard) {
        if (shard.account === undefined || shard.live === undefined) return false
        const id = shard.live.subscriptionId
        const found = yield* api.get(accountRef(shard.account), id).pipe(Effect.result)
        if (found._tag === "Success" || !isNotFound(found.failure)) return false
        yield* countFailure("presence", found.failure)
        shard.status = "error"
        shard.error = "the presence subscription no longer exists on the Graph side (deleted or expired); recreating it"
        yield* SubscriptionRef.set(state, snapshot())
        yield* Effect.logWarning(`presence subscription ${id} no longer exists on the Graph side (deleted or expired); recreating it`).pipe(
          Effect.annotateLogs({ shard: shard.key, subscriptionId: id })
        )
        yield* recreate(shard)
        return true
      })
      /** Under the lock like every step, but the state is published (and saved) only when a shard was recreated. */
      const verifyPresence = Deferred.await(ready).pipe(
        Effect.andThen(lock.withPermits(1)(Effect.gen(function*() {
          const recreated = yield* Effect.forEach(shards, verifyShard)
          if (recreated.some((r) => r)) yield* publish
        }))),
        Effect.catchCause((cause) => Effect.logError("verifying the presence subscriptions failed", cause))
      )

      const guardedQuiet = <A, E>(effect: Effect.Effect<A, E>) =>
        Deferred.await(ready).pipe(
          Effect.andThen(lock.withPermits(1)(effect.pipe(Effect.ensuring(publish)))),
          Effect.catchCause((cause) => Effect.logError("subscription manager step failed", cause))
        )
      /** One step under the lock; afterwards the retirement fiber looks whether an old key was released. */
      const guarded = <A, E>(effect: Effect.Effect<A, E>) =>
        guardedQuiet(effect).pipe(Effect.ensuring(certificate.kick))

      const renewPresenceNow = guarded(Effect.suspend(() => Effect.forEach(shards, renewShard, { discard: true })))
      const renewUsers = guarded(users.renew)

      const setDesiredUsers = (userIds: ReadonlyArray<string>) =>
        guarded(Effect.gen(function*() {
          if (settings.mode !== "push") return
          const plan = planShards(
            shards.filter((s) => s.account !== undefined).map((s) => ({ key: s.key, account: s.account, userIds: s.userIds })),
            userIds,
            accounts,
            settings.maxUsersPerShard
          )
          const next: Array<Shard> = []
          for (const planned of plan) {
            const previous = shards.find((s) => s.key === planned.key)
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
            if (shard.account === undefined) yield* createShard(shard)
            else if (changed && !reflected) yield* recreate(shard)
            else if (shard.live === undefined) yield* createShard(shard)
          }
          for (const gone of shards.filter((s) => !plan.some((p) => p.key === s.key))) yield* dropSubscription(gone)
          shards = next
        }))

      const onLifecycle = (signal: LifecycleSignal) =>
        guarded(Effect.gen(function*() {
          if (signal.kind === "users") return yield* users.onLifecycle(signal.event)
          const shard = shards.find((s) => s.live?.subscriptionId === signal.subscriptionId)
          if (shard === undefined || shard.account === undefined || shard.live === undefined) return
          if (signal.event === "missed") return yield* PubSub.publish(resyncs, shard.live.subscribedIds)
          if (signal.event === "subscriptionRemoved") {
            yield* inbox.unregister(shard.live.subscriptionId)
            shard.live = undefined
            return yield* createShard(shard)
          }
          const reauthorized = yield* api.reauthorize(accountRef(shard.account), shard.live.subscriptionId).pipe(Effect.result)
          if (reauthorized._tag === "Failure" && isNotFound(reauthorized.failure as SubscriptionCallError)) return yield* recreate(shard)
          yield* renewShard(shard)
        }))

      // Adopt what the previous run left: register the clientStates now, verify each subscription by renewing it.
      for (const shard of shards) if (shard.live !== undefined) yield* register(shard.live, shard.key)
      yield* users.adopt
      yield* SubscriptionRef.set(state, snapshot())

      // Registered before the fibers below are forked, so that at shutdown they are interrupted first (a step that is
      // retrying Graph would otherwise hold the lock) and this runs after them.
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          if (settings.deleteOnShutdown) {
            for (const shard of shards) yield* dropSubscription(shard)
            yield* users.remove
            yield* publish
          }
          yield* persister.flush
        }).pipe(lock.withPermits(1))
      )

      yield* inbox.lifecycle.pipe(Stream.runForEach(onLifecycle), Effect.forkScoped)
      // Everything else waits for this first pass (adopted subscriptions verified, the users subscription in place).
      yield* lock.withPermits(1)(
        Effect.suspend(() => Effect.forEach(shards, renewShard, { discard: true })).pipe(
          Effect.andThen(users.renew),
          Effect.andThen(certificate.check),
          Effect.ensuring(publish),
          Effect.catchCause((cause) => Effect.logError("subscription manager start failed", cause))
        )
      ).pipe(Effect.ensuring(Deferred.succeed(ready, undefined)), Effect.forkScoped)
      yield* every(minutes(settings.presenceRenewMinutes), renewPresenceNow).pipe(Effect.forkScoped)
      yield* every(settings.verifySeconds * 1000, verifyPresence).pipe(Effect.forkScoped)
      if (settings.mode === "push") yield* every(minutes(settings.usersRenewMinutes), renewUsers).pipe(Effect.forkScoped)
      yield* certificate.start(guarded, guardedQuiet)

      return SubscriptionManager.of({
        setDesiredUsers,
        held: Effect.sync(() => new Set(shards.flatMap((s) => (s.live?.subscribedIds ?? []).map(teamsKey)))),
        state,
        resyncs: Stream.fromPubSub(resyncs),
        renewPresence: renewPresenceNow,
        renewUsers,
        rotateCertificate: guarded(certificate.rotate)
      })
    })
  )
}
