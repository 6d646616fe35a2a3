/**
 * Owns the connector's Graph subscriptions: presence subscriptions sharded over the delegated accounts (≤ 650 users
 * each), renewed every `presenceRenewMinutes`; the users subscription renewed every `usersRenewMinutes`; lifecycle
 * events; 404 → recreate + resync; 409 ExtensionError → delete the stale one and retry. Its state is persisted in the
 * data directory (adopted at restart) and published as a SubscriptionRef for the status page.
 */
import { Clock, Context, Deferred, Effect, Layer, Metric, Option, PubSub, Queue, Redacted, Semaphore, Stream, SubscriptionRef } from "effect"
import * as crypto from "node:crypto"
import { subscriptionFailures, subscriptionRenewals } from "../domain/Metrics.ts"
import { CertificateStore } from "./crypto/CertificateStore.ts"
import { DecryptPool } from "./crypto/DecryptPool.ts"
import { accountRef, type CredentialRef, GraphConfig } from "./GraphSettings.ts"
import { type LifecycleSignal, NotificationsInbox } from "./NotificationsInbox.ts"
import {
  type CreateSubscription,
  describeError,
  isAlreadyExists,
  isNotFound,
  presenceResource,
  SubscriptionApi,
  type SubscriptionCallError
} from "./SubscriptionApi.ts"
import { every } from "./PollSchedule.ts"
import { LicenceCheck } from "./SubscriptionLicenceCheck.ts"
import { notificationUrls, SubscriptionSettings } from "./SubscriptionSettings.ts"
import { planShards, sameMembers } from "./SubscriptionShards.ts"
import { loadState, type PersistedState, type PersistedSubscription, saveState } from "./SubscriptionStore.ts"

export type ShardStatusKind = "active" | "creating" | "error" | "needsAccount"

export interface ShardStatus {
  readonly key: string
  readonly account: string | undefined
  readonly userCount: number
  readonly subscriptionId?: string
  readonly expiresAt?: number
  readonly lastRenewalAt?: number
  readonly status: ShardStatusKind
  readonly error?: string
}

export interface UsersSubscriptionStatus {
  readonly subscriptionId?: string
  readonly expiresAt?: number
  readonly lastRenewalAt?: number
  readonly status: "active" | "creating" | "error" | "disabled"
  readonly error?: string
}

export interface SubscriptionsState {
  readonly shards: ReadonlyArray<ShardStatus>
  readonly users: UsersSubscriptionStatus
}

interface Live extends PersistedSubscription {
  /** The ids the subscription's resource names (the licensed subset of the shard). */
  readonly subscribedIds: ReadonlyArray<string>
}

interface Shard {
  readonly key: string
  readonly account: string | undefined
  userIds: ReadonlyArray<string>
  live: Live | undefined
  lastRenewalAt: number | undefined
  status: ShardStatusKind
  error: string | undefined
}

export class SubscriptionManager extends Context.Service<SubscriptionManager, {
  setDesiredUsers(userIds: ReadonlyArray<string>): Effect.Effect<void>
  readonly state: SubscriptionRef.SubscriptionRef<SubscriptionsState>
  /** User ids whose presences must be re-read (after a recreate, `missed`, …): the reconciler listens. */
  readonly resyncs: Stream.Stream<ReadonlyArray<string>>
  /** Renews every presence subscription now (the timer does this every presenceRenewMinutes). */
  readonly renewPresence: Effect.Effect<void>
  readonly renewUsers: Effect.Effect<void>
  /** New certificate, PATCHed into every subscription; keys no subscription names any more are dropped. */
  readonly rotateCertificate: Effect.Effect<void>
}>()("presence-connector/graph/SubscriptionManager") {
  static readonly layer = Layer.effect(
    SubscriptionManager,
    Effect.gen(function*() {
      const settings = yield* SubscriptionSettings
      const graph = yield* GraphConfig
      const api = yield* SubscriptionApi
      const inbox = yield* NotificationsInbox
      const licence = yield* LicenceCheck
      const certificates = yield* CertificateStore
      const pool = yield* DecryptPool
      const urls = notificationUrls(settings)
      const accounts = graph.accounts.map((a) => a.name)
      const lock = yield* Semaphore.make(1)
      const ready = yield* Deferred.make<void>()
      const resyncs = yield* PubSub.unbounded<ReadonlyArray<string>>()
      const minutes = (n: number) => n * 60_000

      const persisted = yield* loadState(settings.dataDir)
      let shards: Array<Shard> = persisted.shards.map((p) => ({
        key: p.key,
        account: accounts.includes(p.account) ? p.account : undefined,
        userIds: p.userIds,
        live: p.subscription === undefined ? undefined : { ...p.subscription, subscribedIds: p.userIds },
        lastRenewalAt: undefined,
        status: "active",
        error: undefined
      }))
      let users: { live: PersistedSubscription | undefined; lastRenewalAt: number | undefined; status: UsersSubscriptionStatus["status"]; error: string | undefined } = {
        live: persisted.users,
        lastRenewalAt: undefined,
        status: settings.mode === "push" ? "creating" : "disabled",
        error: undefined
      }
      const state = yield* SubscriptionRef.make<SubscriptionsState>({ shards: [], users: { status: users.status } })
      // Written behind by one fiber, so a slow disk never holds up a renewal; the last state is flushed on shutdown.
      const persistQueue = yield* Queue.sliding<PersistedState>(1)
      let lastPersisted: PersistedState | undefined
      yield* Queue.take(persistQueue).pipe(
        Effect.tap((next) => saveState(settings.dataDir, next)),
        Effect.tap((next) => Effect.sync(() => void (lastPersisted = next))),
        Effect.forever,
        Effect.forkScoped
      )

      const snapshot = (): SubscriptionsState => ({
        shards: shards.map((s) => ({
          key: s.key,
          account: s.account,
          userCount: s.userIds.length,
          status: s.status,
          ...(s.live !== undefined ? { subscriptionId: s.live.subscriptionId, expiresAt: s.live.expiresAt } : {}),
          ...(s.lastRenewalAt !== undefined ? { lastRenewalAt: s.lastRenewalAt } : {}),
          ...(s.error !== undefined ? { error: s.error } : {})
        })),
        users: {
          status: users.status,
          ...(users.live !== undefined ? { subscriptionId: users.live.subscriptionId, expiresAt: users.live.expiresAt } : {}),
          ...(users.lastRenewalAt !== undefined ? { lastRenewalAt: users.lastRenewalAt } : {}),
          ...(users.error !== undefined ? { error: users.error } : {})
        }
      })

      const publish = Effect.gen(function*() {
        yield* SubscriptionRef.set(state, snapshot())
        const toPersist: PersistedState = {
          version: 1,
          shards: shards.flatMap((s) =>
            s.account === undefined ? [] : [{
              key: s.key,
              account: s.account,
              userIds: s.userIds,
              ...(s.live !== undefined ? { subscription: strip(s.live) } : {})
            }]
          ),
          ...(users.live !== undefined ? { users: users.live } : {})
        }
        yield* Queue.offer(persistQueue, toPersist)
      })

      const isoIn = (now: number, expiryMinutes: number) => new Date(now + minutes(expiryMinutes)).toISOString()
      const fail = (kind: "presence" | "users", reason: string) =>
        Metric.update(Metric.withAttributes(subscriptionFailures, { kind, reason }), 1)
      const renewed = (kind: "presence" | "users") => Metric.update(Metric.withAttributes(subscriptionRenewals, { kind }), 1)

      const register = (live: PersistedSubscription, kind: "presence" | "users", key: string) =>
        inbox.register({ id: live.subscriptionId, kind, key, clientState: Redacted.make(live.clientState) })

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

      const createShard = Effect.fnUntraced(function*(shard: Shard) {
        if (shard.account === undefined) {
          shard.status = "needsAccount"
          shard.error = `${shard.userIds.length} users need another technical account: one presence subscription per ` +
            `delegated account holds at most ${settings.maxUsersPerShard} users`
          return
        }
        const permitted = yield* licence.check(shard.userIds)
        if (permitted.length === 0) {
          shard.status = "active"
          shard.error = undefined
          return
        }
        shard.status = "creating"
        yield* SubscriptionRef.set(state, snapshot())
        const now = yield* Clock.currentTimeMillis
        const clientState = crypto.randomBytes(32).toString("base64url")
        const certificate = settings.includeResourceData ? yield* certificates.current : undefined
        const body: CreateSubscription = {
          changeType: "updated",
          notificationUrl: urls.notificationUrl,
          lifecycleNotificationUrl: urls.lifecycleNotificationUrl,
          resource: presenceResource(permitted),
          expirationDateTime: isoIn(now, settings.presenceExpiryMinutes),
          clientState,
          includeResourceData: certificate !== undefined,
          ...(certificate !== undefined ? { encryptionCertificate: certificate.certificate, encryptionCertificateId: certificate.id } : {})
        }
        const withdraw = yield* inbox.expect({ kind: "presence", key: shard.key, clientState: Redacted.make(clientState) })
        const created = yield* createWithRetry(accountRef(shard.account), body).pipe(Effect.result, Effect.ensuring(withdraw))
        if (created._tag === "Failure") {
          shard.status = "error"
          shard.error = `creating the presence subscription failed: ${describeError(created.failure)}`
          yield* fail("presence", created.failure._tag === "GraphError" ? created.failure.code : created.failure.reason)
          yield* Effect.logError(shard.error).pipe(Effect.annotateLogs({ shard: shard.key }))
          return
        }
        shard.live = {
          subscriptionId: created.success.id,
          clientState,
          expiresAt: Date.parse(created.success.expirationDateTime) || now + minutes(settings.presenceExpiryMinutes),
          subscribedIds: permitted,
          ...(certificate !== undefined ? { certificateId: certificate.id } : {})
        }
        yield* register(shard.live, "presence", shard.key)
        shard.status = "active"
        shard.error = undefined
        shard.lastRenewalAt = now
        yield* Effect.logInfo(`presence subscription created for ${permitted.length} users`).pipe(
          Effect.annotateLogs({ shard: shard.key, subscriptionId: created.success.id })
        )
        yield* PubSub.publish(resyncs, permitted)
      })

      const recreate = Effect.fnUntraced(function*(shard: Shard) {
        yield* dropSubscription(shard)
        yield* createShard(shard)
      })

      const renewShard = Effect.fnUntraced(function*(shard: Shard) {
        if (shard.account === undefined) return yield* createShard(shard)
        if (shard.live === undefined) return yield* createShard(shard)
        const permitted = yield* licence.check(shard.userIds)
        if (!sameMembers(permitted, shard.live.subscribedIds)) return yield* recreate(shard)
        const now = yield* Clock.currentTimeMillis
        const answer = yield* api.renew(accountRef(shard.account), shard.live.subscriptionId, {
          expirationDateTime: isoIn(now, settings.presenceExpiryMinutes)
        }).pipe(Effect.result)
        if (answer._tag === "Success") {
          shard.live = { ...shard.live, expiresAt: Date.parse(answer.success.expirationDateTime) || now }
          shard.lastRenewalAt = now
          shard.status = "active"
          shard.error = undefined
          return yield* renewed("presence")
        }
        yield* fail("presence", answer.failure._tag === "GraphError" ? answer.failure.code : answer.failure.reason)
        if (isNotFound(answer.failure)) {
          yield* Effect.logWarning("presence subscription vanished (404); recreating it").pipe(Effect.annotateLogs({ shard: shard.key }))
          return yield* recreate(shard)
        }
        shard.status = "error"
        shard.error = `renewal failed: ${describeError(answer.failure)}`
        yield* Effect.logError(shard.error).pipe(Effect.annotateLogs({ shard: shard.key }))
      })

      const createUsers = Effect.fnUntraced(function*() {
        users.status = "creating"
        const now = yield* Clock.currentTimeMillis
        const clientState = crypto.randomBytes(32).toString("base64url")
        const withdraw = yield* inbox.expect({ kind: "users", key: "users", clientState: Redacted.make(clientState) })
        const created = yield* api.create(settings.usersCredential, {
          changeType: "updated,deleted",
          notificationUrl: urls.notificationUrl,
          lifecycleNotificationUrl: urls.lifecycleNotificationUrl,
          resource: "/users",
          expirationDateTime: isoIn(now, settings.usersExpiryMinutes),
          clientState,
          includeResourceData: false
        }).pipe(Effect.result, Effect.ensuring(withdraw))
        if (created._tag === "Failure") {
          users.status = "error"
          users.error = `creating the users subscription failed: ${describeError(created.failure)}`
          yield* fail("users", created.failure._tag === "GraphError" ? created.failure.code : created.failure.reason)
          return yield* Effect.logError(users.error)
        }
        users.live = {
          subscriptionId: created.success.id,
          clientState,
          expiresAt: Date.parse(created.success.expirationDateTime) || now + minutes(settings.usersExpiryMinutes)
        }
        yield* register(users.live, "users", "users")
        users.status = "active"
        users.error = undefined
        users.lastRenewalAt = now
      })

      const renewUsersNow = Effect.fnUntraced(function*() {
        if (settings.mode !== "push") return
        if (users.live === undefined) return yield* createUsers()
        const now = yield* Clock.currentTimeMillis
        const answer = yield* api.renew(settings.usersCredential, users.live.subscriptionId, {
          expirationDateTime: isoIn(now, settings.usersExpiryMinutes)
        }).pipe(Effect.result)
        if (answer._tag === "Success") {
          users.live = { ...users.live, expiresAt: Date.parse(answer.success.expirationDateTime) || now }
          users.lastRenewalAt = now
          users.status = "active"
          users.error = undefined
          return yield* renewed("users")
        }
        yield* fail("users", answer.failure._tag === "GraphError" ? answer.failure.code : answer.failure.reason)
        if (isNotFound(answer.failure)) {
          yield* inbox.unregister(users.live.subscriptionId)
          users.live = undefined
          return yield* createUsers()
        }
        users.status = "error"
        users.error = `renewal failed: ${describeError(answer.failure)}`
      })

      const guarded = <A, E>(effect: Effect.Effect<A, E>) =>
        Deferred.await(ready).pipe(
          Effect.andThen(lock.withPermits(1)(effect.pipe(Effect.ensuring(publish)))),
          Effect.catchCause((cause) => Effect.logError("subscription manager step failed", cause))
        )

      const renewPresenceNow = guarded(Effect.suspend(() => Effect.forEach(shards, renewShard, { discard: true })))
      const renewUsers = guarded(renewUsersNow())

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
            if (shard.account === undefined) yield* createShard(shard)
            else if (changed) yield* recreate(shard)
            else if (shard.live === undefined) yield* createShard(shard)
          }
          for (const gone of shards.filter((s) => !plan.some((p) => p.key === s.key))) yield* dropSubscription(gone)
          shards = next
        }))

      const onLifecycle = (signal: LifecycleSignal) =>
        guarded(Effect.gen(function*() {
          if (signal.kind === "users") {
            if (signal.event === "subscriptionRemoved" && users.live !== undefined) {
              yield* inbox.unregister(users.live.subscriptionId)
              users.live = undefined
              return yield* createUsers()
            }
            if (signal.event === "reauthorizationRequired" && users.live !== undefined) {
              yield* api.reauthorize(settings.usersCredential, users.live.subscriptionId).pipe(Effect.ignore)
              return yield* renewUsersNow()
            }
            return
          }
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
      for (const shard of shards) if (shard.live !== undefined) yield* register(shard.live, "presence", shard.key)
      if (users.live !== undefined) yield* register(users.live, "users", "users")
      yield* SubscriptionRef.set(state, snapshot())

      yield* inbox.lifecycle.pipe(Stream.runForEach(onLifecycle), Effect.forkScoped)
      // Everything else waits for this first pass (adopted subscriptions verified, the users subscription in place).
      yield* lock.withPermits(1)(
        Effect.suspend(() => Effect.forEach(shards, renewShard, { discard: true })).pipe(
          Effect.andThen(renewUsersNow()),
          Effect.ensuring(publish),
          Effect.catchCause((cause) => Effect.logError("subscription manager start failed", cause))
        )
      ).pipe(Effect.ensuring(Deferred.succeed(ready, undefined)), Effect.forkScoped)
      yield* every(minutes(settings.presenceRenewMinutes), renewPresenceNow).pipe(Effect.forkScoped)
      if (settings.mode === "push") yield* every(minutes(settings.usersRenewMinutes), renewUsers).pipe(Effect.forkScoped)
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          if (settings.deleteOnShutdown) {
            for (const shard of shards) yield* dropSubscription(shard)
            if (users.live !== undefined) {
              yield* api.remove(settings.usersCredential, users.live.subscriptionId).pipe(Effect.ignore)
              users.live = undefined
            }
            yield* publish
          }
          const latest = Option.getOrUndefined(yield* Queue.poll(persistQueue))
          if (latest !== undefined && latest !== lastPersisted) yield* saveState(settings.dataDir, latest)
        }).pipe(lock.withPermits(1))
      )

      const rotateCertificate = guarded(Effect.gen(function*() {
        if (!settings.includeResourceData) return
        const next = yield* certificates.rotate
        yield* pool.reloadKeys
        const now = yield* Clock.currentTimeMillis
        for (const shard of shards) {
          if (shard.live === undefined || shard.account === undefined) continue
          const answer = yield* api.renew(accountRef(shard.account), shard.live.subscriptionId, {
            expirationDateTime: isoIn(now, settings.presenceExpiryMinutes),
            encryptionCertificate: next.certificate,
            encryptionCertificateId: next.id
          }).pipe(Effect.result)
          if (answer._tag === "Success") shard.live = { ...shard.live, certificateId: next.id, expiresAt: Date.parse(answer.success.expirationDateTime) || now }
          else if (isNotFound(answer.failure)) yield* recreate(shard)
        }
        const inUse = shards.flatMap((s) => (s.live?.certificateId === undefined ? [] : [s.live.certificateId]))
        yield* certificates.retire(inUse)
        yield* pool.reloadKeys
      }))

      return SubscriptionManager.of({
        setDesiredUsers,
        state,
        resyncs: Stream.fromPubSub(resyncs),
        renewPresence: renewPresenceNow,
        renewUsers,
        rotateCertificate
      })
    })
  )
}

const strip = (live: Live): PersistedSubscription => ({
  subscriptionId: live.subscriptionId,
  clientState: live.clientState,
  expiresAt: live.expiresAt,
  ...(live.certificateId !== undefined ? { certificateId: live.certificateId } : {})
})
