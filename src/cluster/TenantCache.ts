/**
 * Something a runner reads per tenant from its stored configuration (a tenant's webhook paths: ClusterRunner.ts), kept
 * until the store's tenant changes name the tenant, with a read in the background after `safetyMillis` in case a
 * change was missed. Reading it every few seconds per tenant instead cost a read and the opening of the tenant's
 * sealed configuration each time: at 50 tenants, fifteen a second over three runners (docs/scaling.md).
 */
import { Clock, Effect, Stream } from "effect"
import type { TenantChange, TenantId } from "../state/StateStore.ts"

export interface TenantCache<A> {
  /** The tenant's value: read on first use; a read that fails keeps what was known (undefined before). */
  readonly get: (tenant: TenantId) => Effect.Effect<A | undefined>
  /** Forgets each tenant the changes name, for as long as they run (the caller forks it). */
  readonly follow: (changes: Stream.Stream<TenantChange, unknown>) => Effect.Effect<void, unknown>
}

export const makeTenantCache = <A>(read: (tenant: TenantId) => Effect.Effect<A, unknown>, safetyMillis: number): TenantCache<A> => {
  const cache = new Map<TenantId, { readonly at: number; readonly value: A | undefined }>()
  const refresh = (tenant: TenantId) =>
    read(tenant).pipe(
      Effect.tap((value) => Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.sync(() => cache.set(tenant, { at, value })))),
      Effect.orElseSucceed(() => cache.get(tenant)?.value)
    )
  return {
    get: (tenant) =>
      Effect.gen(function*() {
        const cached = cache.get(tenant)
        if (cached === undefined) return yield* refresh(tenant)
        const now = yield* Clock.currentTimeMillis
        if (now - cached.at >= safetyMillis) {
          cache.set(tenant, { ...cached, at: now })
          yield* Effect.forkDetach(refresh(tenant))
        }
        return cached.value
      }),
    follow: (changes) => Stream.runForEach(changes, (change) => Effect.sync(() => void cache.delete(change.id)))
  }
}
