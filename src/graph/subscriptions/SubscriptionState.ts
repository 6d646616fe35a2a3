/**
 * The subscription manager's bookkeeping: the status it publishes for the status page, the shards it holds in memory,
 * and how both are adopted from and written behind to the tenant's state (src/state: subscriptions.json in the data
 * directory, or a row in PostgreSQL; clientStates sealed at rest).
 */
import { Effect, Metric, Option, Queue } from "effect"
import { subscriptionFailures, subscriptionRenewals } from "../../domain/Metrics.ts"
import { emptySubscriptionState, type StoredSubscription, type SubscriptionState } from "../../state/Records.ts"
import type { TenantState } from "../../state/TenantState.ts"
import type { SubscriptionCallError } from "./SubscriptionApi.ts"

export type ShardStatusKind = "active" | "creating" | "waiting" | "error" | "needsAccount"

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

export interface Live extends StoredSubscription {
  /** The ids the subscription's resource names (the licensed subset of the shard). */
  readonly subscribedIds: ReadonlyArray<string>
}

export interface Shard {
  readonly key: string
  readonly account: string | undefined
  userIds: ReadonlyArray<string>
  live: Live | undefined
  lastRenewalAt: number | undefined
  status: ShardStatusKind
  error: string | undefined
}

export const minutes = (n: number) => n * 60_000

export const isoIn = (now: number, expiryMinutes: number) => new Date(now + minutes(expiryMinutes)).toISOString()

export const countFailure = (kind: "presence" | "users", error: SubscriptionCallError) =>
  Metric.update(
    Metric.withAttributes(subscriptionFailures, { kind, reason: error._tag === "GraphError" ? error.code : error.reason }),
    1
  )

export const countRenewal = (kind: "presence" | "users") => Metric.update(Metric.withAttributes(subscriptionRenewals, { kind }), 1)

/**
 * The stored state; nothing stored is an empty state, and so (logged) is a record that does not decode. A store that
 * cannot be reached, or clientStates sealed with a key that is not configured, fail: adopting nothing would leave
 * the previous run's subscriptions at Graph beside new ones.
 */
const loadState = (state: TenantState["Service"]) =>
  state.subscriptions.load.pipe(
    Effect.map(Option.getOrElse(() => emptySubscriptionState)),
    Effect.catch((error) =>
      error.reason === "Corrupt"
        ? Effect.logWarning(`${error.message}; starting without adopted subscriptions`).pipe(Effect.as(emptySubscriptionState))
        : Effect.fail(error)
    )
  )

const saveState = (state: TenantState["Service"], next: SubscriptionState) =>
  state.subscriptions.save(next).pipe(Effect.catch((error) => Effect.logError(`could not save the subscription state: ${error.message}`)))

/**
 * The previous run's shards and users subscription; a shard whose account is no longer configured keeps its users
 * but needs another account.
 */
export const adopt = Effect.fnUntraced(function*(state: TenantState["Service"], accounts: ReadonlyArray<string>) {
  const persisted = yield* loadState(state)
  const shards = persisted.shards.map((p): Shard => ({
    key: p.key,
    account: accounts.includes(p.account) ? p.account : undefined,
    userIds: p.userIds,
    live: p.subscription === undefined ? undefined : { ...p.subscription, subscribedIds: p.subscribedIds ?? p.userIds },
    lastRenewalAt: undefined,
    status: "active",
    error: undefined
  }))
  return { shards, users: persisted.users }
})

export const shardStatus = (s: Shard): ShardStatus => ({
  key: s.key,
  account: s.account,
  userCount: s.userIds.length,
  status: s.status,
  ...(s.live !== undefined ? { subscriptionId: s.live.subscriptionId, expiresAt: s.live.expiresAt } : {}),
  ...(s.lastRenewalAt !== undefined ? { lastRenewalAt: s.lastRenewalAt } : {}),
  ...(s.error !== undefined ? { error: s.error } : {})
})

/** What a restart adopts: shards without an account are re-planned, so they are not kept. */
export const toPersisted = (shards: ReadonlyArray<Shard>, users: StoredSubscription | undefined): SubscriptionState => ({
  version: 1,
  shards: shards.flatMap((s) =>
    s.account === undefined ? [] : [{
      key: s.key,
      account: s.account,
      userIds: s.userIds,
      ...(s.live !== undefined ? { subscription: strip(s.live), subscribedIds: s.live.subscribedIds } : {})
    }]
  ),
  ...(users !== undefined ? { users } : {})
})

const strip = (live: Live): StoredSubscription => ({
  subscriptionId: live.subscriptionId,
  clientState: live.clientState,
  expiresAt: live.expiresAt,
  ...(live.certificateId !== undefined ? { certificateId: live.certificateId } : {})
})

/**
 * Writes the state behind, from one fiber, so a slow disk never holds up a renewal; `flush` writes the last state
 * offered if the fiber has not yet (on shutdown).
 */
export const makePersister = Effect.fnUntraced(function*(state: TenantState["Service"]) {
  const queue = yield* Queue.sliding<SubscriptionState>(1)
  let lastPersisted: SubscriptionState | undefined
  yield* Queue.take(queue).pipe(
    Effect.tap((next) => saveState(state, next)),
    Effect.tap((next) => Effect.sync(() => void (lastPersisted = next))),
    Effect.forever,
    Effect.forkScoped
  )
  const flush = Effect.gen(function*() {
    const latest = Option.getOrUndefined(yield* Queue.poll(queue))
    if (latest !== undefined && latest !== lastPersisted) yield* saveState(state, latest)
  })
  return { offer: (next: SubscriptionState) => Queue.offer(queue, next), flush }
})
