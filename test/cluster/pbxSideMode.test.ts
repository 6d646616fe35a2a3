/**
 * A runner's PBX sides read their tenant's socket mode again when the store's tenant changes say the tenant changed
 * (src/cluster/PbxSide.ts `stopWhenOwnerMode`), on a real PostgreSQL: a side whose tenant is updated to mode `owner`
 * stops, a tenant without a side here is not read, and nothing is read while nothing changes (it was every side's
 * configuration every 5 s). The clock is the TestClock: a minute passes without a read.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Layer, Option, Redacted } from "effect"
import { TestClock } from "effect/testing"
import { stopWhenOwnerMode } from "../../src/cluster/PbxSide.ts"
import { StateStore, type TenantId } from "../../src/state/StateStore.ts"
import { keyEnv, newKey, openStore, tenant, tenantConfig, withEnv } from "../state/fixtures.ts"
import { tenantsChannel } from "../../src/state/postgres/PgTenants.ts"
import { awaitListening, newSchemaUrl } from "../support/postgres.ts"

describe("cluster: a PBX side's mode follows its tenant's changes", () => {
  it.effect("an update to mode owner stops the tenant's side; nothing is read while nothing changes", () =>
    Effect.scoped(Effect.gen(function*() {
      const url = yield* Effect.promise(newSchemaUrl)
      const store = yield* openStore(StateStore.layerPostgres({ url: Redacted.make(url), maxConnections: 4 }).pipe(Layer.provide(withEnv(keyEnv(newKey())))))
      const [alpha, bravo, charlie] = ["alpha", "bravo", "charlie"].map(tenant) as [TenantId, TenantId, TenantId]
      for (const t of [alpha, bravo, charlie]) yield* store.tenants.put(t, tenantConfig(t).config)
      // The mode as the stored configuration gives it; here a second version is one that needs the owner's connector.
      const reads: Array<TenantId> = []
      const bothRead = Deferred.makeUnsafe<void>()
      const socketMode = (t: TenantId) =>
        store.tenants.get(t).pipe(Effect.map((found) => {
          reads.push(t)
          if (reads.includes(alpha) && reads.includes(bravo)) Deferred.doneUnsafe(bothRead, Effect.void)
          return Option.isSome(found) && found.value.version >= 2 ? "owner" as const : "any" as const
        }))
      const sides = new Map<TenantId, string>([[alpha, "side of alpha"], [bravo, "side of bravo"]])
      const stopped = Deferred.makeUnsafe<string>()
      yield* stopWhenOwnerMode(store.tenants.changes, socketMode, sides, (t, side) =>
        Effect.sync(() => sides.delete(t)).pipe(Effect.andThen(Deferred.succeed(stopped, side)), Effect.asVoid))

      // The stream starts with every tenant as added: each running side is read once (charlie has none here).
      yield* Deferred.await(bothRead)
      assert.sameMembers(reads, [alpha, bravo])
      yield* awaitListening(url, tenantsChannel)
      yield* TestClock.adjust("1 minute")
      yield* store.tenants.put(alpha, tenantConfig(alpha).config)
      assert.strictEqual(yield* Deferred.await(stopped), "side of alpha")
      assert.deepStrictEqual(reads.slice(2), [alpha], "only the updated tenant is read, and nothing in the minute before")
      assert.deepStrictEqual([...sides.keys()], [bravo])
    })))
})
