/**
 * A tenant removed while an update restarts it (`run`, src/tenants/TenantsRun.ts and TenantMemory.ts), over real
 * sockets against the simulators: the old connector stops keeping its Graph subscriptions for the new one, and the
 * removal is read before the new one has taken them over. The new connector's first read of the tenant is held (a
 * Deferred), so the removal lands exactly in that gap; the tenant's Graph must hold none of its subscriptions afterwards.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Schema, Stream, SubscriptionRef } from "effect"
import { TenantConfig } from "../../src/state/StateStore.ts"
import { removeTenant, updateTenant } from "../../src/tenants/TenantManagement.ts"
import { freePort, runAll, served, simulatedTenant, subscriptionsOf, until } from "./tenantsHarness.ts"

describe("a tenant removed during its update's restart", () => {
  it.live("its subscriptions are deleted at its Graph though no connector holds them", () =>
    Effect.scoped(Effect.gen(function*() {
      const port = yield* freePort
      const tenants = [yield* simulatedTenant("default", port), yield* simulatedTenant("t1", port)]
      const t1 = tenants[1]!
      let holding = false
      const reached = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const { run, store } = yield* runAll(port, tenants, (store) => ({
        ...store,
        tenants: {
          ...store.tenants,
          // Once armed, the supervisor's read of t1 (the new connector's start) waits until released.
          get: (id) =>
            holding && id === t1.id
              ? Deferred.succeed(reached, undefined).pipe(Effect.andThen(Deferred.await(release)), Effect.andThen(store.tenants.get(id)))
              : store.tenants.get(id)
        }
      }))
      yield* served(t1, port)
      const before = yield* until("t1's presence subscriptions", Effect.map(subscriptionsOf(t1), (list) =>
        list.some((s) => s.kind === "presence") ? list : undefined), 30_000)
      assert.isAbove(before.length, 0)

      holding = true
      const updated = yield* updateTenant(store, t1.id, yield* Schema.decodeUnknownEffect(TenantConfig)(t1.config))
      assert.strictEqual(updated.version, 2)
      // The old connector has stopped (keeping its subscriptions for the new one), the new one not started.
      yield* Deferred.await(reached)
      assert.deepStrictEqual((yield* subscriptionsOf(t1)).map((s) => s.id).sort(), before.map((s) => s.id).sort())
      yield* removeTenant(store, t1.id)
      // The supervisor has read the removal once t1 is no longer among its tenants.
      yield* SubscriptionRef.changes(run.supervisor.states).pipe(Stream.filter((states) => !states.has(t1.id)), Stream.take(1), Stream.runDrain)
      yield* Deferred.succeed(release, undefined)
      yield* until("t1's subscriptions deleted at its Graph", Effect.map(subscriptionsOf(t1), (list) => (list.length === 0 ? true : undefined)), 20_000)
      assert.deepStrictEqual(yield* subscriptionsOf(t1), [])
      assert.isUndefined(run.servers.local(t1.id))
    })), 90_000)
})
