/**
 * A tenant removed while an update restarts it (`run`, src/tenants/TenantsRun.ts and TenantMemory.ts), over real
 * sockets against the simulators: the old connector stops keeping its Graph subscriptions for the new one, and the
 * removal is read before the new one has taken them over — before it starts, or while it is still starting. One of the
 * new connector's reads of the store is held (a Deferred), so the removal lands exactly there; the tenant's Graph must
 * hold none of its subscriptions afterwards. A tenant whose secret is wrong is removed without hanging the others.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Schema, Stream, SubscriptionRef } from "effect"
import type { StateStore } from "../../src/state/StateStore.ts"
import { TenantConfig } from "../../src/state/StateStore.ts"
import { addTenant, removeTenant, updateTenant } from "../../src/tenants/TenantManagement.ts"
import { freePort, runAll, type Sim, served, simulatedTenant, subscriptionsOf, until } from "./tenantsHarness.ts"

type Store = StateStore["Service"]

/** Which of t1's reads is held once armed: the supervisor's read of the tenant, or its connector's of its subscriptions. */
type Held = "tenant" | "subscriptions"

/** Tenants default and t1 running, t1 with its presence subscriptions at its Graph; `hold` arms the held read. */
const setUp = (held: Held) =>
  Effect.gen(function*() {
    const port = yield* freePort
    const tenants = [yield* simulatedTenant("default", port), yield* simulatedTenant("t1", port)]
    const t1 = tenants[1]!
    let holding = false
    const reached = yield* Deferred.make<void>()
    const release = yield* Deferred.make<void>()
    const gate = <A, E>(read: Effect.Effect<A, E>) =>
      holding ? Deferred.succeed(reached, undefined).pipe(Effect.andThen(Deferred.await(release)), Effect.andThen(read)) : read
    const { run, store } = yield* runAll(port, tenants, (store): Store => ({
      ...store,
      tenants: { ...store.tenants, get: (id) => (held === "tenant" && id === t1.id ? gate(store.tenants.get(id)) : store.tenants.get(id)) },
      subscriptions: {
        ...store.subscriptions,
        load: (id) => (held === "subscriptions" && id === t1.id ? gate(store.subscriptions.load(id)) : store.subscriptions.load(id))
      }
    }))
    yield* served(t1, port)
    const before = yield* until("t1's presence subscriptions", Effect.map(subscriptionsOf(t1), (list) =>
      list.some((s) => s.kind === "presence") ? list : undefined), 30_000)
    const hold = Effect.sync(() => (holding = true))
    return { run, store, t1, before, hold, reached, release }
  })

const configOf = (tenant: Sim, change: Record<string, unknown> = {}) => Schema.decodeUnknownEffect(TenantConfig)({ ...tenant.config, ...change })

/** Waits until the supervisor no longer runs the tenant (it has read the removal and stopped the tenant's work). */
const gone = (run: Effect.Success<ReturnType<typeof setUp>>["run"], id: string) =>
  SubscriptionRef.changes(run.supervisor.states).pipe(Stream.filter((states) => !states.has(id as never)), Stream.take(1), Stream.runDrain)

describe("a tenant removed during its update's restart", () => {
  for (const [held, when] of [["tenant", "before its new connector starts"], ["subscriptions", "while its new connector starts"]] as const) {
    it.live(`removed ${when}: its subscriptions are deleted at its Graph though no connector holds them`, () =>
      Effect.scoped(Effect.gen(function*() {
        const { run, store, t1, before, hold, reached, release } = yield* setUp(held)
        yield* hold
        const updated = yield* updateTenant(store, t1.id, yield* configOf(t1))
        assert.strictEqual(updated.version, 2)
        // The old connector has stopped, keeping its subscriptions for the new one, which has not taken them over.
        yield* Deferred.await(reached)
        assert.deepStrictEqual((yield* subscriptionsOf(t1)).map((s) => s.id).sort(), before.map((s) => s.id).sort())
        yield* removeTenant(store, t1.id)
        yield* gone(run, t1.id)
        yield* Deferred.succeed(release, undefined)
        yield* until("t1's subscriptions deleted at its Graph", Effect.map(subscriptionsOf(t1), (list) => (list.length === 0 ? true : undefined)), 20_000)
        assert.deepStrictEqual(yield* subscriptionsOf(t1), [])
        assert.isUndefined(run.servers.local(t1.id))
      })), 90_000)
  }

  it.live("a tenant updated to a wrong secret is removed without hanging: the next change is applied", () =>
    Effect.scoped(Effect.gen(function*() {
      const { run, store, t1 } = yield* setUp("tenant")
      const wrong = yield* configOf(t1, { app: { clientSecret: "not-the-secret" } })
      assert.strictEqual((yield* updateTenant(store, t1.id, wrong)).version, 2)
      yield* SubscriptionRef.changes(run.supervisor.states).pipe(
        Stream.filter((states) => states.get(t1.id)?.version === 2),
        Stream.take(1),
        Stream.runDrain
      )
      yield* removeTenant(store, t1.id)
      yield* gone(run, t1.id)
      // Added again with its right secret: applied only once the removal's stop (and its deletions) are done.
      const added = yield* addTenant(store, t1.id, yield* configOf(t1))
      yield* SubscriptionRef.changes(run.supervisor.states).pipe(
        Stream.filter((states) => states.get(t1.id)?.version === added.version),
        Stream.take(1),
        Stream.runDrain
      )
      yield* until("t1 served again", Effect.sync(() => run.servers.local(t1.id)), 30_000)
    })), 90_000)
})
