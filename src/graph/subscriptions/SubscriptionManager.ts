/**
 * Owns the connector's Graph subscriptions: presence subscriptions sharded over the delegated accounts (≤ 650 users
 * each, PresenceShards.ts), renewed every `presenceRenewMinutes` and looked up every `verifySeconds`
 * (SubscriptionVerification.ts); the users subscription (SubscriptionUsers.ts); lifecycle events; the rich-notification
 * certificate's rotation (SubscriptionCertificates.ts). Its state is kept in the tenant's state store (adopted at
 * restart, SubscriptionState.ts) and published as a SubscriptionRef for the status page. Every step runs under one lock.
 */
import { Context, Deferred, Effect, Layer, PubSub, Semaphore, Stream, SubscriptionRef } from "effect"
import { teamsKey } from "../../domain/TeamsId.ts"
import { TenantState } from "../../state/TenantState.ts"
import { GraphConfig } from "../client/GraphSettings.ts"
import { type LifecycleSignal, NotificationsInbox } from "../notifications/NotificationsInbox.ts"
import { every } from "../presence/PollSchedule.ts"
import { applyPlan, dropShard, onShardLifecycle, registerAdopted, renewAll, renewShard, type ShardContext } from "./PresenceShards.ts"
import { SubscriptionApi } from "./SubscriptionApi.ts"
import { type CertificateRotation, makeCertificateRotation } from "./SubscriptionCertificates.ts"
import { LicenceCheck } from "./SubscriptionLicenceCheck.ts"
import { SubscriptionSettings } from "./SubscriptionSettings.ts"
import { adopt, makePersister, minutes, shardStatus, type SubscriptionsState, toPersisted } from "./SubscriptionState.ts"
import { makeUsersSubscription } from "./SubscriptionUsers.ts"
import { verifyShards } from "./SubscriptionVerification.ts"

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
      const manager = yield* makeManager
      const { ctx, settings } = manager
      // Adopt what the previous run left: register the clientStates now, verify each subscription by renewing it.
      yield* registerAdopted(ctx)
      yield* manager.users.adopt
      yield* ctx.showState
      // Registered before the fibers below are forked, so that at shutdown they are interrupted first (a step that is
      // retrying Graph would otherwise hold the lock) and this runs after them.
      yield* Effect.addFinalizer(() => shutdown(manager))
      yield* ctx.inbox.lifecycle.pipe(Stream.runForEach((signal) => guarded(manager, onLifecycle(manager, signal))), Effect.forkScoped)
      // Everything else waits for this first pass (adopted subscriptions verified, the users subscription in place).
      yield* startPass(manager).pipe(Effect.ensuring(Deferred.succeed(manager.ready, undefined)), Effect.forkScoped)
      const renewPresence = guarded(manager, renewAll(ctx))
      const renewUsers = guarded(manager, manager.users.renew)
      yield* every(minutes(settings.presenceRenewMinutes), renewPresence).pipe(Effect.forkScoped)
      yield* every(settings.verifySeconds * 1000, verifyPresence(manager)).pipe(Effect.forkScoped)
      if (settings.mode === "push") yield* every(minutes(settings.usersRenewMinutes), renewUsers).pipe(Effect.forkScoped)
      yield* ctx.certificate.start((step) => guarded(manager, step), (step) => guardedQuiet(manager, step))
      return SubscriptionManager.of({
        setDesiredUsers: (userIds) => guarded(manager, settings.mode === "push" ? applyPlan(ctx, userIds) : Effect.void),
        held: Effect.sync(() => new Set(ctx.book.shards.flatMap((s) => (s.live?.subscribedIds ?? []).map(teamsKey)))),
        state: manager.state,
        resyncs: Stream.fromPubSub(ctx.resyncs),
        renewPresence,
        renewUsers,
        rotateCertificate: guarded(manager, ctx.certificate.rotate)
      })
    })
  )
}

/** The manager's parts: the shard steps' context, the users subscription, the lock, the state it publishes and saves. */
interface Manager {
  readonly settings: SubscriptionSettings["Service"]
  readonly ctx: ShardContext
  readonly users: Effect.Success<ReturnType<typeof makeUsersSubscription>>
  readonly lock: Semaphore.Semaphore
  /** Completed when the first pass is done: every later step waits for it. */
  readonly ready: Deferred.Deferred<void>
  readonly state: SubscriptionRef.SubscriptionRef<SubscriptionsState>
  readonly persister: Effect.Success<ReturnType<typeof makePersister>>
}

const makeManager = Effect.gen(function*() {
  const settings = yield* SubscriptionSettings
  const accounts = (yield* GraphConfig).accounts.map((a) => a.name)
  const stored = yield* TenantState
  const adopted = yield* adopt(stored, accounts)
  const book = { shards: adopted.shards }
  const users = yield* makeUsersSubscription(adopted.users)
  // The rotation renews shards through the context built below; it is called only after the layer is built.
  const certificate: CertificateRotation = yield* makeCertificateRotation({
    shards: () => book.shards,
    renewShard: (shard) => renewShard(ctx, shard)
  })
  const state = yield* SubscriptionRef.make<SubscriptionsState>({ shards: [], users: { status: users.status().status } })
  const snapshot = (): SubscriptionsState => {
    const current = certificate.status()
    return { shards: book.shards.map(shardStatus), users: users.status(), ...(current !== undefined ? { certificate: current } : {}) }
  }
  const ctx: ShardContext = {
    settings,
    accounts,
    api: yield* SubscriptionApi,
    inbox: yield* NotificationsInbox,
    licence: yield* LicenceCheck,
    certificate,
    book,
    showState: Effect.suspend(() => SubscriptionRef.set(state, snapshot())),
    resyncs: yield* PubSub.unbounded<ReadonlyArray<string>>()
  }
  return {
    settings,
    ctx,
    users,
    lock: yield* Semaphore.make(1),
    ready: yield* Deferred.make<void>(),
    state,
    persister: yield* makePersister(stored)
  } satisfies Manager
})

/** Shows the state and saves it (behind, from the persister's fiber). */
const publish = (manager: Manager) =>
  manager.ctx.showState.pipe(
    Effect.andThen(Effect.suspend(() => manager.persister.offer(toPersisted(manager.ctx.book.shards, manager.users.persisted()))))
  )

/** One step under the lock, after the first pass; the state is published afterwards, a failure logged. */
const guardedQuiet = <A, E>(manager: Manager, step: Effect.Effect<A, E>) =>
  Deferred.await(manager.ready).pipe(
    Effect.andThen(manager.lock.withPermits(1)(step.pipe(Effect.ensuring(publish(manager))))),
    Effect.catchCause((cause) => Effect.logError("subscription manager step failed", cause))
  )

/** One step under the lock; afterwards the retirement fiber looks whether an old key was released. */
const guarded = <A, E>(manager: Manager, step: Effect.Effect<A, E>) =>
  guardedQuiet(manager, step).pipe(Effect.ensuring(manager.ctx.certificate.kick))

const onLifecycle = (manager: Manager, signal: LifecycleSignal) =>
  signal.kind === "users" ? manager.users.onLifecycle(signal.event) : onShardLifecycle(manager.ctx, signal)

/** Adopted subscriptions renewed (which verifies them), the users subscription in place, the certificate checked. */
const startPass = (manager: Manager) =>
  manager.lock.withPermits(1)(
    renewAll(manager.ctx).pipe(
      Effect.andThen(manager.users.renew),
      Effect.andThen(manager.ctx.certificate.check),
      Effect.ensuring(publish(manager)),
      Effect.catchCause((cause) => Effect.logError("subscription manager start failed", cause))
    )
  )

/**
 * Under the lock like every step, but the state is published (and saved) only when a shard was recreated or the users
 * subscription, whose creation had failed, was tried again.
 */
const verifyPresence = (manager: Manager) =>
  Deferred.await(manager.ready).pipe(
    Effect.andThen(manager.lock.withPermits(1)(
      Effect.all([verifyShards(manager.ctx), manager.users.createIfFailed]).pipe(
        Effect.flatMap(([recreated, created]) => (recreated || created ? publish(manager) : Effect.void))
      )
    )),
    Effect.catchCause((cause) => Effect.logError("verifying the presence subscriptions failed", cause))
  )

/** With `deleteOnShutdown` every subscription is deleted at Graph; the last state is written either way. */
const shutdown = Effect.fn("SubscriptionManager.shutdown")(
  function*(manager: Manager) {
    if (manager.settings.deleteOnShutdown) {
      for (const shard of manager.ctx.book.shards) yield* dropShard(manager.ctx, shard)
      yield* manager.users.remove
      yield* publish(manager)
    }
    yield* manager.persister.flush
  },
  (step, manager) => manager.lock.withPermits(1)(step)
)
