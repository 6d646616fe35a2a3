/**
 * `run` without a cluster: one process serves tenant `default` (the configuration file, as before) and every tenant of
 * the state store, each its own connector (TenantRuntime.ts) on a loopback port, behind one public port
 * (src/cluster/RunnerFront.ts): `/t/<id>/…` is tenant `<id>` — its status page, Graph webhook and lifecycle paths and
 * PBX websocket —, `/metrics`, `/tenants/` and `/api/tenants…` are the process's own (ProcessRoutes.ts), any other path
 * is `default`. The stored tenants follow the store (TenantSupervisor.ts): a tenant
 * added is started, one updated restarted, one removed stopped with its Graph subscriptions deleted — also when it
 * is removed while an update restarts it and no connector holds them (TenantMemory.ts).
 */
import { Clock, Effect, Layer, type Redacted, SubscriptionRef } from "effect"
import type { ConnectorConfig } from "../config/Config.ts"
import { type ConnectorSettings, settingsFromConfig } from "../config/Settings.ts"
import { startRunnerFront } from "../cluster/RunnerFront.ts"
import { defaultTenant, StateStore, type TenantId } from "../state/StateStore.ts"
import { TenantState } from "../state/TenantState.ts"
import { superviseTenants, type TenantSupervisor } from "./TenantSupervisor.ts"
import { makeTenantServers, storedTenantConfig, type TenantServers } from "./TenantRuntime.ts"
import { makeTenantMemory } from "./TenantMemory.ts"
import { serveProcessRoutes } from "./ProcessRoutes.ts"
import { tenantsOverview } from "./TenantsOverview.ts"
import { defaultBackoffPolicy } from "../domain/LoginBackoff.ts"

export interface TenantsRunOptions {
  /** The configuration file: the process's settings and tenant `default`. */
  readonly config: ConnectorConfig
  /** Tenant `default`'s settings (with the status page's password). */
  readonly defaultSettings: ConnectorSettings
  /** A stored tenant without a status password of its own uses this one. */
  readonly adminPassword: Redacted.Redacted<string>
  /** The supervisor's first pause after a tenant's failure (default 1 s). */
  readonly firstPause?: import("effect").Duration.Input
  /**
   * A tenant's own Clock (tests: one tenant's time run faster through an outage of minutes, test/support/warpClock.ts);
   * default: the process's.
   */
  readonly clockOf?: ((tenant: TenantId) => Clock.Clock | undefined) | undefined
}

export interface TenantsRun {
  readonly port: number
  readonly servers: TenantServers
  readonly supervisor: TenantSupervisor
}

/**
 * A removed tenant deletes its subscriptions when it stops, whatever `deleteSubscriptionsOnShutdown` says (nothing
 * would renew them); an update or the process's own stop follows the setting.
 */
/** The answer for a tenant known without looking (the configuration file's `default`), made once. */
const knownAlready: Promise<boolean> = Promise.resolve(true)

const deletingWhenRemoved = (settings: ConnectorSettings, isRemoved: () => boolean): ConnectorSettings => {
  const configured = settings.subscriptions.deleteOnShutdown
  // Read when the subscription manager stops, not when it starts.
  const subscriptions = Object.defineProperty({ ...settings.subscriptions }, "deleteOnShutdown", {
    get: () => configured || isRemoved(),
    enumerable: true
  })
  return { ...settings, subscriptions }
}

/** Starts every tenant and the public front in the current scope; closing it stops the front first, then the tenants. */
export const runTenants = Effect.fn("TenantsRun.run")(function*(options: TenantsRunOptions) {
  const store = yield* StateStore
  const servers = yield* makeTenantServers(options.config.notifications.decryptWorkers, options.config.notifications.decryptWorkerNice)
  const stateOf = (tenant: TenantId) => TenantState.layer(tenant).pipe(Layer.provideMerge(Layer.succeed(StateStore, store)))

  // Tenant `default` as before: a failure to start it is the process's failure to start.
  yield* servers.serve(defaultTenant, options.defaultSettings, { state: stateOf(defaultTenant) })

  const removed = new Set<TenantId>()
  // A removal deletes the tenant's subscriptions even when no connector of it holds them (TenantMemory.ts).
  const memory = makeTenantMemory(store, options.config)
  const memoryStateOf = (tenant: TenantId) => Layer.mergeAll(Layer.succeed(TenantState, memory.stateOf(tenant)), Layer.succeed(StateStore, store))
  const supervisor = yield* superviseTenants(store, {
    ...(options.firstPause !== undefined ? { firstPause: options.firstPause } : {}),
    run: (tenant) =>
      Effect.gen(function*() {
        const settings = yield* settingsFromConfig(storedTenantConfig(options.config, tenant.id, tenant.config))
        // The tenant's own password opens its page; the provider's opens it too (and is the only one without its own).
        const withPassword = { ...settings, adminPassword: settings.adminPassword ?? options.adminPassword, providerPassword: options.adminPassword }
        yield* memory.running(tenant)
        const serve = servers.serve(tenant.id, deletingWhenRemoved(withPassword, () => removed.has(tenant.id)), { state: memoryStateOf(tenant.id) })
        const clock = options.clockOf?.(tenant.id)
        yield* (clock === undefined ? serve : Effect.provideService(serve, Clock.Clock, clock))
        return yield* Effect.never
      }),
    removing: (id) => Effect.sync(() => removed.add(id)),
    removed: (id) => Effect.andThen(memory.removed(id), Effect.sync(() => removed.delete(id))),
    // A removal read while an update still stops the old work: that stop deletes the subscriptions.
    seen: (change) => Effect.sync(() => (change.kind === "removed" ? removed.add(change.id) : removed.delete(change.id)))
  })

  const processRoutes = yield* serveProcessRoutes({
    adminPassword: options.adminPassword,
    loginBackoff: options.defaultSettings.statusPage?.loginBackoff ?? defaultBackoffPolicy,
    store,
    overview: Effect.flatMap(SubscriptionRef.get(supervisor.states), (states) => tenantsOverview([defaultTenant], states, servers))
  })
  const front = yield* startRunnerFront({
    processRoutes,
    host: options.config.http.host,
    port: options.config.http.port,
    runnerId: "local",
    defaultTenant,
    local: servers.local,
    // Read as it is, without running an effect: with many tenants nearly every change is a POST of its own, and running
    // an effect per POST here cost a fiber and a promise each (docs/performance.md, "tenants-50: the main thread's cost per POST").
    known: (tenant) => (tenant === defaultTenant ? knownAlready : Promise.resolve(SubscriptionRef.getUnsafe(supervisor.states).has(tenant))),
    // One process: a known tenant that is not running here (starting, or failed and waiting) has no other owner.
    owner: () => Promise.resolve(undefined),
    // The process's status is the tenants' overview (ProcessRoutes.ts, behind the admin password).
    statusPath: null,
    admit: () => Promise.resolve("unauthorized"),
    status: () =>
      Effect.runPromise(Effect.map(SubscriptionRef.get(supervisor.states), (states) => ({
        tenants: [
          { tenant: defaultTenant, state: servers.local(defaultTenant) !== undefined ? "running" : "stopped" },
          ...[...states].map(([tenant, state]) => ({ tenant, ...state }))
        ]
      })))
  })
  return { port: front.port, servers, supervisor } satisfies TenantsRun
})
