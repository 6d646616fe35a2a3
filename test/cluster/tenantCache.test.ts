/**
 * What a runner keeps per tenant from its stored configuration (src/cluster/TenantCache.ts; a tenant's webhook paths),
 * on a real PostgreSQL: read once, not again while time passes without a change, read again once the store's tenant
 * changes name the tenant, and in the background after the safety interval. The clock is the TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted, Stream } from "effect"
import { TestClock } from "effect/testing"
import { makeTenantCache } from "../../src/cluster/TenantCache.ts"
import { StateStore, type TenantChange } from "../../src/state/StateStore.ts"
import { keyEnv, newKey, openStore, tenant, tenantConfig, withEnv } from "../state/fixtures.ts"
import { newSchemaUrl } from "../support/postgres.ts"
import { makeRecordedWaits } from "../support/waiting.ts"

const alpha = tenant("alpha")
const bravo = tenant("bravo")

describe("cluster: a tenant's stored settings kept until the tenant changes", () => {
  it.effect("read once, again after a change that names the tenant, and after the safety interval", () =>
    Effect.scoped(Effect.gen(function*() {
      const url = yield* Effect.promise(newSchemaUrl)
      const store = yield* openStore(StateStore.layerPostgres({ url: Redacted.make(url), maxConnections: 3 }).pipe(Layer.provide(withEnv(keyEnv(newKey())))))
      yield* store.tenants.put(alpha, tenantConfig("alpha").config)
      yield* store.tenants.put(bravo, tenantConfig("bravo").config)
      const { recorded, until } = makeRecordedWaits()
      const reads: Array<string> = []
      const versionOf = (t: typeof alpha) =>
        store.tenants.get(t).pipe(Effect.map((found) => Option.getOrThrow(found).version), Effect.tap(() => Effect.sync(() => {
          reads.push(t)
          recorded()
        })))
      const cache = makeTenantCache(versionOf, 300_000)

      assert.strictEqual(yield* cache.get(alpha), 1)
      assert.strictEqual(yield* cache.get(bravo), 1)
      yield* TestClock.adjust("4 minutes")
      assert.strictEqual(yield* cache.get(alpha), 1)
      assert.deepStrictEqual(reads, [alpha, bravo], "no read while nothing changed")

      // alpha is updated; the changes (as the store's stream gives them) name it: its next use reads it again.
      yield* store.tenants.put(alpha, tenantConfig("alpha").config)
      const updated: TenantChange = { kind: "updated", id: alpha, version: 2 }
      yield* cache.follow(Stream.make(updated))
      assert.strictEqual(yield* cache.get(alpha), 2)
      assert.strictEqual(yield* cache.get(bravo), 1)
      assert.deepStrictEqual(reads, [alpha, bravo, alpha], "only the tenant named was read again")

      // Past the safety interval a use answers what is known at once and reads again in the background.
      yield* store.tenants.put(bravo, tenantConfig("bravo").config)
      yield* TestClock.adjust("2 minutes")
      assert.strictEqual(yield* cache.get(bravo), 1)
      yield* until(() => reads.length === 4)
      assert.strictEqual(reads[3], bravo)
      // The background read keeps what it read in the same turn; a round trip to the database later it is there.
      yield* store.tenants.get(bravo)
      assert.strictEqual(yield* cache.get(bravo), 2)
    })))

  it.effect("the store's own tenant changes reach the cache", () =>
    Effect.scoped(Effect.gen(function*() {
      const url = yield* Effect.promise(newSchemaUrl)
      const store = yield* openStore(StateStore.layerPostgres({ url: Redacted.make(url), maxConnections: 3 }).pipe(Layer.provide(withEnv(keyEnv(newKey())))))
      yield* store.tenants.put(alpha, tenantConfig("alpha").config)
      const cache = makeTenantCache((t: typeof alpha) => Effect.map(store.tenants.get(t), (found) => Option.getOrThrow(found).version), 300_000)
      assert.strictEqual(yield* cache.get(alpha), 1)
      // The stream of the store, as the runner follows it, stopped after its first change past the initial "added".
      yield* store.tenants.put(alpha, tenantConfig("alpha").config)
      yield* cache.follow(store.tenants.changes.pipe(Stream.filter((change) => change.version === 2), Stream.take(1)))
      assert.strictEqual(yield* cache.get(alpha), 2)
    })))
})
