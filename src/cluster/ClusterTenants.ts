/**
 * "Exactly one runner runs tenant X's long-running work": one effect/cluster singleton per tenant (`tenant/<id>`),
 * registered at run time on every runner for every tenant known (fixed ones such as `default`, and those of the state
 * store, followed through its changes stream); the runner holding the singleton's shard runs it. On start the owner
 * claims the tenant in the store, which hands it the next owner epoch: the fencing token every write of the tenant
 * carries, so a paused or cut-off former owner can never overwrite the new one (docs/scaling.md).
 */
import { Context, Deferred, Effect, FiberMap, Layer, Schedule, type Scope, Stream, SubscriptionRef } from "effect"
import { Sharding } from "effect/cluster"
import { clip } from "../domain/LogText.ts"
import { StateStore, type TenantId, type TenantOwner } from "../state/StateStore.ts"
import { describeCause } from "../state/StateStoreError.ts"

/** A tenant this runner owns: since when (Clock ms) and with which epoch. */
export interface OwnedTenant extends TenantOwner {
  readonly since: number
}

/**
 * Runs one tenant for as long as this runner owns it (the scope closes when the tenant moves, is removed or updated).
 * A failure is logged and the work restarted with backoff: effect/cluster does not restart a failed singleton.
 */
export type TenantWork = (tenant: TenantId, owner: TenantOwner) => Effect.Effect<void, unknown, Scope.Scope>

export interface ClusterTenantsOptions {
  /** This runner's id (its advertised HTTP address); written as the owner of the tenants it runs. */
  readonly runnerId: string
  /** Tenants run whether or not the store lists them (the configuration file's `default`). */
  readonly fixed: ReadonlyArray<TenantId>
  /** Follow the store's tenants (add, update → restart, remove). */
  readonly fromStore: boolean
  readonly work: TenantWork
}

export const singletonName = (tenant: TenantId): string => `tenant/${tenant}`

const again = Schedule.min([Schedule.exponential("1 second", 2), Schedule.spaced("30 seconds")])

export class ClusterTenants extends Context.Service<ClusterTenants, {
  readonly runnerId: string
  /** The tenants this runner owns now. */
  readonly owned: SubscriptionRef.SubscriptionRef<ReadonlyMap<TenantId, OwnedTenant>>
  /** The tenants registered on this runner (every runner registers every tenant). */
  readonly registered: Effect.Effect<ReadonlyArray<TenantId>>
  /** Whether the store's tenants have been read once (before that, a store tenant would be unknown here). */
  readonly tenantsRead: Effect.Effect<boolean>
}>()("teams-presence-connector/cluster/ClusterTenants") {
  static readonly layer = (options: ClusterTenantsOptions) =>
    Layer.effect(ClusterTenants, Effect.gen(function*() {
      const sharding = yield* Sharding.Sharding
      const store = yield* StateStore
      const owned = yield* SubscriptionRef.make<ReadonlyMap<TenantId, OwnedTenant>>(new Map())
      const registrations = yield* FiberMap.make<TenantId>()

      /** The singleton's body: claim, then the tenant's work, supervised, until the shard moves. */
      const ownTenant = (tenant: TenantId) =>
        Effect.gen(function*() {
          const owner = yield* store.owners.claim(tenant, options.runnerId).pipe(
            Effect.tapError((error) => Effect.logWarning(`cannot claim tenant ${tenant}: ${clip(error.message, 300)}; trying again`)),
            Effect.retry(again)
          )
          const since = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
          yield* SubscriptionRef.update(owned, (map) => new Map(map).set(tenant, { ...owner, since }))
          yield* Effect.addFinalizer(() =>
            SubscriptionRef.update(owned, (map) => {
              const next = new Map(map)
              next.delete(tenant)
              return next
            }).pipe(Effect.andThen(Effect.logInfo(`cluster: tenant ${tenant} released by ${options.runnerId}`)))
          )
          yield* Effect.logInfo(`cluster: tenant ${tenant} owned by ${options.runnerId} (epoch ${owner.epoch})`)
          // Logged when the work is interrupted, before its scope closes: the moment this runner lets the tenant go.
          const stopping = Effect.logInfo(`cluster: tenant ${tenant} stopping on ${options.runnerId}`)
          yield* Effect.scoped(options.work(tenant, owner).pipe(Effect.onInterrupt(() => stopping))).pipe(
            Effect.tapCause((cause) => Effect.logError(`cluster: tenant ${tenant} stopped with a failure; starting it again`, cause)),
            Effect.retry(again)
          )
        }).pipe(Effect.annotateLogs({ tenant }))

      /** Registers the tenant's singleton unless it is registered already (a re-read stream repeats every tenant). */
      const register = (tenant: TenantId) =>
        FiberMap.run(
          registrations,
          tenant,
          sharding.registerSingleton(singletonName(tenant), ownTenant(tenant)).pipe(Effect.andThen(Effect.never), Effect.scoped),
          { onlyIfMissing: true }
        )

      for (const tenant of options.fixed) yield* register(tenant)

      const tenantsRead = yield* Deferred.make<void>()
      if (options.fromStore) {
        const fixed = new Set(options.fixed)
        // The tenants as they are now first, so that the runner is ready only once it knows them all.
        const readOnce = store.tenants.list.pipe(
          Effect.flatMap((tenants) => Effect.forEach(tenants, (t) => (fixed.has(t.id) ? Effect.void : register(t.id)), { discard: true })),
          Effect.andThen(Deferred.succeed(tenantsRead, undefined))
        )
        const follow = store.tenants.changes.pipe(
          Stream.runForEach((change) =>
            fixed.has(change.id) ? Effect.void : Effect.gen(function*() {
              if (change.kind === "removed" || change.kind === "updated") yield* FiberMap.remove(registrations, change.id)
              if (change.kind !== "removed") yield* register(change.id)
              yield* Effect.logDebug(`cluster: tenant ${change.id} ${change.kind} (version ${change.version})`)
            })
          )
        )
        yield* readOnce.pipe(
          Effect.andThen(follow),
          Effect.tapError((error) => Effect.logWarning(`cluster: following the tenants failed (${describeCause(error)}); again`)),
          Effect.retry(again),
          Effect.forkScoped
        )
      } else {
        yield* Deferred.succeed(tenantsRead, undefined)
      }

      return ClusterTenants.of({
        runnerId: options.runnerId,
        owned,
        registered: Effect.sync(() => Array.from(registrations, ([tenant]) => tenant)),
        tenantsRead: Deferred.isDone(tenantsRead)
      })
    }))
}
