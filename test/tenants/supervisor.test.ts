/**
 * The tenant supervisor against both real state stores (files, and PostgreSQL through the test server): tenants added,
 * updated and removed in the store (by another "process") are started, restarted and stopped; a tenant whose work
 * fails, or that cannot be read (sealed with a key this process does not have), is retried and shown failed without
 * touching the others; closing the scope stops every tenant.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Queue, Redacted, Scope, Exit, Stream, SubscriptionRef } from "effect"
import { join } from "node:path"
import type { TenantConfig, TenantId } from "../../src/state/Records.ts"
import { StateStore, StateStoreError } from "../../src/state/StateStore.ts"
import { superviseTenants, type TenantRunState } from "../../src/tenants/TenantSupervisor.ts"
import { newSchemaUrl } from "../support/postgres.ts"
import { makeTempDir } from "../support/tempDir.ts"
import { keyEnv, keyIdOf, newKey, openStore, tenant, tenantConfig, withEnv } from "../state/fixtures.ts"

interface Backend {
  readonly name: string
  /** Store layers on one fresh storage: each call a new process with these keys. */
  readonly storage: Effect.Effect<(env: Record<string, string>) => Layer.Layer<StateStore, unknown>, never, Scope.Scope>
}

const backends: ReadonlyArray<Backend> = [
  {
    name: "files",
    storage: makeTempDir("tpc-tenants-").pipe(Effect.map((dir) => (env: Record<string, string>) =>
      StateStore.layerFiles(join(dir, "data")).pipe(Layer.provide(withEnv(env)))
    ))
  },
  {
    name: "postgres",
    storage: Effect.promise(newSchemaUrl).pipe(Effect.map((url) => (env: Record<string, string>) =>
      StateStore.layerPostgres({ url: Redacted.make(url), maxConnections: 3 }).pipe(Layer.provide(withEnv(env)))
    ))
  }
]

const withMaster = (config: TenantConfig, masterPbx: string): TenantConfig => ({ ...config, pbx: { ...config.pbx, masterPbx } })

/** A tenant's work for the tests: says when it starts and stops (with its master PBX); master "fails" fails at once. */
const probe = (events: Queue.Queue<string>) => (t: { readonly id: TenantId; readonly version: number; readonly config: TenantConfig }) =>
  Effect.gen(function*() {
    if (t.config.pbx.masterPbx === "fails") return yield* Effect.fail(new Error(`PBX ${t.config.pbx.masterPbx} refused`))
    yield* Effect.addFinalizer(() => Queue.offer(events, `stop ${t.id} v${t.version}`))
    yield* Queue.offer(events, `start ${t.id} v${t.version} ${t.config.pbx.masterPbx}`)
    return yield* Effect.never
  })

const until = (states: SubscriptionRef.SubscriptionRef<ReadonlyMap<TenantId, TenantRunState>>, check: (s: ReadonlyMap<TenantId, TenantRunState>) => boolean) =>
  Stream.runHead(Stream.filter(SubscriptionRef.changes(states), check)).pipe(Effect.map((found) => found._tag === "Some" ? found.value : new Map()))

const [a, b, c] = [tenant("alpha"), tenant("beta"), tenant("gamma")]

/** Two processes on one fresh storage with the same key: one that changes the tenants, one supervised; alpha stored. */
const adminAndStore = (backend: Backend) =>
  Effect.gen(function*() {
    const storeOn = yield* backend.storage
    const env = keyEnv(newKey())
    const admin = yield* openStore(storeOn(env))
    const store = yield* openStore(storeOn(env))
    yield* admin.tenants.put(a, withMaster(tenantConfig("a").config, "pbx-a"))
    return { admin, store }
  })

for (const backend of backends) {
  describe(`tenant supervisor (${backend.name})`, () => {
    it.live("follows the store: added → started, updated → restarted, removed → stopped; the scope's end stops all", () =>
      Effect.gen(function*() {
        const { admin, store } = yield* adminAndStore(backend)
        const events = yield* Queue.unbounded<string>()
        const scope = yield* Scope.make()
        yield* superviseTenants(store, { run: probe(events) }).pipe(Scope.provide(scope))
        assert.strictEqual(yield* Queue.take(events), "start alpha v1 pbx-a", "a tenant present at start")
        yield* admin.tenants.put(b, withMaster(tenantConfig("b").config, "pbx-b"))
        assert.strictEqual(yield* Queue.take(events), "start beta v1 pbx-b")
        yield* admin.tenants.put(a, withMaster(tenantConfig("a").config, "pbx-a2"))
        assert.deepStrictEqual([yield* Queue.take(events), yield* Queue.take(events)], ["stop alpha v1", "start alpha v2 pbx-a2"])
        yield* admin.tenants.remove(b)
        assert.strictEqual(yield* Queue.take(events), "stop beta v1")
        yield* Scope.close(scope, Exit.void)
        assert.strictEqual(yield* Queue.take(events), "stop alpha v2")
        assert.strictEqual(yield* Queue.size(events), 0, "nothing else happened")
      }).pipe(Effect.scoped))

    it.live("after the changes stream failed, a tenant removed meanwhile is stopped and one updated meanwhile restarted", () =>
      Effect.gen(function*() {
        const { admin, store } = yield* adminAndStore(backend)
        yield* admin.tenants.put(b, withMaster(tenantConfig("b").config, "pbx-b"))
        // The first stream: both tenants, then (unseen by it) beta removed and alpha updated, then the store fails.
        const outage = Stream.concat(
          Stream.concat(
            store.tenants.changes.pipe(Stream.take(2)),
            Stream.fromEffect(Effect.andThen(admin.tenants.remove(b), admin.tenants.put(a, withMaster(tenantConfig("a").config, "pbx-a2")))).pipe(Stream.drain)
          ),
          Stream.fail(new StateStoreError({ reason: "Unavailable", message: "the database is gone" }))
        )
        let follows = 0
        const flaky = { ...store, tenants: { ...store.tenants, changes: Stream.suspend(() => (follows++ === 0 ? outage : store.tenants.changes)) } }
        const events = yield* Queue.unbounded<string>()
        yield* superviseTenants(flaky, { run: probe(events), firstPause: "10 millis" })
        const started = [yield* Queue.take(events), yield* Queue.take(events)]
        assert.sameMembers(started, ["start alpha v1 pbx-a", "start beta v1 pbx-b"])
        const rechecked = [yield* Queue.take(events), yield* Queue.take(events), yield* Queue.take(events)]
        assert.sameMembers(rechecked, ["stop beta v1", "stop alpha v1", "start alpha v2 pbx-a2"])
        assert.isAtLeast(follows, 2, "the changes were followed again")
      }).pipe(Effect.scoped))

    it.live("a failing tenant and an unreadable one are retried and shown failed; the others run on untouched", () =>
      Effect.gen(function*() {
        const storeOn = yield* backend.storage
        const [mine, foreign] = [newKey(), newKey()]
        // Tenant gamma was stored by a process with another state key: this one cannot open its secrets.
        yield* (yield* openStore(storeOn(keyEnv(foreign)))).tenants.put(c, tenantConfig("c").config)
        const admin = yield* openStore(storeOn(keyEnv(mine, [foreign])))
        yield* admin.tenants.put(a, withMaster(tenantConfig("a").config, "pbx-a"))
        yield* admin.tenants.put(b, withMaster(tenantConfig("b").config, "fails"))
        const events = yield* Queue.unbounded<string>()
        const { states } = yield* superviseTenants(yield* openStore(storeOn(keyEnv(mine))), {
          run: probe(events),
          firstPause: "10 millis",
          maxPause: "40 millis"
        })
        assert.strictEqual(yield* Queue.take(events), "start alpha v1 pbx-a")
        const failing = yield* until(states, (s) => {
          const [beta, gamma] = [s.get(b), s.get(c)]
          return beta?.state === "failed" && beta.failures >= 3 && gamma?.state === "failed" && gamma.failures >= 3
        })
        const beta = failing.get(b)!
        const gamma = failing.get(c)!
        assert.strictEqual(beta.state === "failed" ? beta.error : "", "PBX fails refused")
        assert.include(gamma.state === "failed" ? gamma.error : "", `sealed with state key ${yield* keyIdOf(foreign)}`)
        assert.deepStrictEqual(failing.get(a), { state: "running", version: 1 })
        assert.strictEqual(yield* Queue.size(events), 0, "alpha was never stopped or restarted")

        // Fixed in the store: beta runs with its new configuration at once.
        yield* admin.tenants.put(b, withMaster(tenantConfig("b").config, "pbx-b"))
        assert.strictEqual(yield* Queue.take(events), "start beta v2 pbx-b")
        const fixed = yield* until(states, (s) => s.get(b)?.state === "running")
        assert.deepStrictEqual(fixed.get(b), { state: "running", version: 2 })
      }).pipe(Effect.scoped))
  })
}
