/**
 * Owns the connector's Graph subscriptions: presence subscriptions sharded over the delegated accounts (≤ 650 users
 * each), renewed every `presenceRenewMinutes`; the users subscription renewed every `usersRenewMinutes`; lifecycle
 * events; 404 → recreate + resync; 409 ExtensionError → delete the stale one and retry. Its state is persisted in the
 * data directory (adopted at restart) and published as a SubscriptionRef for the status page.
 * It also rotates the rich-notification certificate before it expires (checked at start and every
 * `certificateCheckMinutes`), PATCHing the new one into every presence subscription; an old key is retired once no
 * subscription names it and `certificateGraceMinutes` have passed (Graph's retries are still sealed with it).
 */
import { Clock, Context, Deferred, Effect, Layer, Metric, Option, PubSub, Queue, Redacted, Semaphore, Stream, SubscriptionRef } from "effect"
import * as crypto from "node:crypto"
import { subscriptionFailures, subscriptionRenewals } from "../domain/Metrics.ts"
import { type CertificateInfo, CertificateStore } from "./crypto/CertificateStore.ts"
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

/** The rich-notification certificate (push mode with resource data only). */
export interface CertificateStatus {
  readonly currentId: string
  readonly notAfter: number
  readonly lastRotationAt?: number
  /** Older keys still held for decryption: named by a subscription (no `retireAt` yet), or in their grace period. */
  readonly previous: ReadonlyArray<{ readonly id: string; readonly retireAt?: number }>
  readonly error?: string
}

export interface SubscriptionsState {
  readonly shards: ReadonlyArray<ShardStatus>
  readonly users: UsersSubscriptionStatus
  readonly certificate?: CertificateStatus
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
  /**
   * New certificate now, PATCHed into every presence subscription; the old key is retired once no subscription names
   * it and the grace period has passed. (The expiry check does this by itself before the certificate expires.)
   */
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
      const rich = settings.mode === "push" && settings.includeResourceData
      /** Wakes the key-retirement fiber after anything that may have released an old certificate. */
      const retirementKick = yield* Queue.sliding<void>(1)
      /** When each old key was first seen named by no subscription (in memory: a restart restarts the grace period). */
      const unusedSince = new Map<string, number>()
      let nextRetirementAt: number | undefined
      let certificateStatus: CertificateStatus | undefined
      let lastRotationAt: number | undefined

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
        },
        ...(certificateStatus !== undefined ? { certificate: certificateStatus } : {})
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
        // A subscription naming an older certificate gets the current one with its renewal (rotation, or a retry of a
        // rotation PATCH that failed).
        const certificate = rich && shard.live.certificateId !== undefined ? yield* certificates.current : undefined
        const replace = certificate !== undefined && certificate.id !== shard.live.certificateId ? certificate : undefined
        const answer = yield* api.renew(accountRef(shard.account), shard.live.subscriptionId, {
          expirationDateTime: isoIn(now, settings.presenceExpiryMinutes),
          ...(replace !== undefined ? { encryptionCertificate: replace.certificate, encryptionCertificateId: replace.id } : {})
        }).pipe(Effect.result)
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

      const guardedQuiet = <A, E>(effect: Effect.Effect<A, E>) =>
        Deferred.await(ready).pipe(
          Effect.andThen(lock.withPermits(1)(effect.pipe(Effect.ensuring(publish)))),
          Effect.catchCause((cause) => Effect.logError("subscription manager step failed", cause))
        )
      /** One step under the lock; afterwards the retirement fiber looks whether an old key was released. */
      const guarded = <A, E>(effect: Effect.Effect<A, E>) =>
        guardedQuiet(effect).pipe(Effect.ensuring(rich ? Queue.offer(retirementKick, undefined) : Effect.void))

      const describeCertificate = (info: CertificateInfo, previous: CertificateStatus["previous"], error?: string): CertificateStatus => ({
        currentId: info.id,
        notAfter: info.notAfter,
        previous,
        ...(lastRotationAt !== undefined ? { lastRotationAt } : {}),
        ...(error !== undefined ? { error } : {})
      })

      /**
       * Drops old keys no subscription names any more once their grace period has passed, reloading the decryption
       * workers; remembers when the next one falls due.
       */
      const retireKeys = Effect.fnUntraced(function*() {
        if (!rich) return
        const now = yield* Clock.currentTimeMillis
        const current = yield* certificates.current
        const held = yield* certificates.keys
        const named = new Set(shards.flatMap((s) => (s.live?.certificateId === undefined ? [] : [s.live.certificateId])))
        const grace = minutes(settings.certificateGraceMinutes)
        const previous: Array<CertificateStatus["previous"][number]> = []
        const retired: Array<string> = []
        nextRetirementAt = undefined
        for (const key of held) {
          if (key.id === current.id) continue
          if (named.has(key.id)) {
            unusedSince.delete(key.id)
            previous.push({ id: key.id })
            continue
          }
          const since = unusedSince.get(key.id) ?? now
          unusedSince.set(key.id, since)
          const retireAt = since + grace
          if (now < retireAt) {
            previous.push({ id: key.id, retireAt })
            nextRetirementAt = Math.min(nextRetirementAt ?? retireAt, retireAt)
          } else {
            retired.push(key.id)
          }
        }
        if (retired.length > 0) {
          yield* certificates.retire(previous.map((p) => p.id))
          yield* pool.reloadKeys
          for (const id of retired) unusedSince.delete(id)
          yield* Effect.logInfo(`retired ${retired.length} rich-notification key(s) no subscription names any more`).pipe(
            Effect.annotateLogs({ certificateIds: retired.join(",") })
          )
        }
        certificateStatus = describeCertificate(current, previous)
      })

      /** New certificate: the workers learn the key first, then every presence subscription is PATCHed to name it. */
      const rotateNow = Effect.fnUntraced(function*(reason: string) {
        const next = yield* certificates.rotate
        yield* pool.reloadKeys
        lastRotationAt = yield* Clock.currentTimeMillis
        yield* Effect.logInfo(`rich-notification certificate rotated (${reason})`).pipe(Effect.annotateLogs({ certificateId: next.id }))
        for (const shard of shards) {
          if (shard.live !== undefined && shard.account !== undefined && shard.live.certificateId !== undefined) yield* renewShard(shard)
        }
        const failed = shards.filter((s) => s.live?.certificateId !== undefined && s.live.certificateId !== next.id).length
        if (failed > 0) {
          yield* Effect.logWarning(`${failed} presence subscription(s) still name the old certificate; the next renewal retries`)
        }
        yield* retireKeys()
      })

      /** Rotates when the current certificate expires within `certificateRenewBeforeDays`. */
      const checkCertificate = Effect.fnUntraced(function*() {
        if (!rich) return
        const window = settings.certificateRenewBeforeDays * 24 * 60 * 60_000
        const now = yield* Clock.currentTimeMillis
        const current = yield* certificates.current
        if (current.notAfter - now > window) return yield* retireKeys()
        const rotated = yield* rotateNow(`the current one expires ${new Date(current.notAfter).toISOString()}`).pipe(Effect.result)
        if (rotated._tag === "Failure") {
          const message = `certificate rotation failed: ${rotated.failure.message}; retried at the next check`
          certificateStatus = describeCertificate(current, certificateStatus?.previous ?? [], message)
          return yield* Effect.logError(message)
        }
        const next = yield* certificates.current
        if (next.notAfter - now <= window) {
          yield* Effect.logWarning("the certificate lifetime is shorter than the rotation window: it is rotated at every check")
        }
      })

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
          Effect.andThen(checkCertificate()),
          Effect.ensuring(publish),
          Effect.catchCause((cause) => Effect.logError("subscription manager start failed", cause))
        )
      ).pipe(Effect.ensuring(Deferred.succeed(ready, undefined)), Effect.forkScoped)
      yield* every(minutes(settings.presenceRenewMinutes), renewPresenceNow).pipe(Effect.forkScoped)
      if (settings.mode === "push") yield* every(minutes(settings.usersRenewMinutes), renewUsers).pipe(Effect.forkScoped)
      if (rich) {
        yield* every(minutes(settings.certificateCheckMinutes), guarded(checkCertificate())).pipe(Effect.forkScoped)
        // Sleeps until the next old key falls due, or until a step may have released one.
        yield* Effect.gen(function*() {
          while (true) {
            const now = yield* Clock.currentTimeMillis
            if (nextRetirementAt === undefined) yield* Queue.take(retirementKick)
            else yield* Queue.take(retirementKick).pipe(Effect.timeoutOption(Math.max(0, nextRetirementAt - now)))
            yield* guardedQuiet(retireKeys())
          }
        }).pipe(Effect.forkScoped)
      }
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

      const rotateCertificate = guarded(Effect.suspend(() => (rich ? rotateNow("requested") : Effect.void)))

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
