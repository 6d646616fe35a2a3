/**
 * A cluster runner's own paths on its public port (docs/operations.md, "Cluster runners"), as `run` without a cluster
 * serves them (src/tenants/ProcessRoutes.ts, the same code): the whole process's `/metrics` (the series of every tenant
 * that ran on this runner, each with its `tenant` label), and behind the provider's admin password the tenants'
 * overview — `/tenants/` and `/api/tenants/status` — of the tenants this runner owns, naming the runner, and the
 * tenants API over the shared store.
 */
import { Effect, type Redacted, SubscriptionRef } from "effect"
import type { BackoffPolicy } from "../domain/LoginBackoff.ts"
import type { StateStore, TenantId } from "../state/StateStore.ts"
import { serveProcessRoutes } from "../tenants/ProcessRoutes.ts"
import type { TenantServers } from "../tenants/TenantRuntime.ts"
import { tenantsOverview } from "../tenants/TenantsOverview.ts"
import type { TenantRunState } from "../tenants/TenantSupervisor.ts"
import type { OwnedTenant } from "./ClusterTenants.ts"

/** The overview of the tenants `runner` owns: running once its connector serves, starting before. */
export const runnerOverview = (
  runner: string,
  owned: SubscriptionRef.SubscriptionRef<ReadonlyMap<TenantId, OwnedTenant>>,
  servers: TenantServers
) =>
  Effect.gen(function*() {
    const ids = [...(yield* SubscriptionRef.get(owned)).keys()]
    const supervised = new Map<TenantId, TenantRunState>(ids.map((id) => [id, { state: "running", version: 0 }]))
    return { ...(yield* tenantsOverview([], supervised, servers)), runner }
  })

/** Serves the runner's own paths on a loopback port in the current scope; its port for the runner's front. */
export const serveRunnerProcessRoutes = (options: {
  readonly runner: string
  readonly adminPassword: Redacted.Redacted<string>
  readonly loginBackoff: BackoffPolicy
  readonly store: StateStore["Service"]
  readonly owned: SubscriptionRef.SubscriptionRef<ReadonlyMap<TenantId, OwnedTenant>>
  readonly servers: TenantServers
}) =>
  serveProcessRoutes({
    adminPassword: options.adminPassword,
    loginBackoff: options.loginBackoff,
    store: options.store,
    overview: runnerOverview(options.runner, options.owned, options.servers)
  })
