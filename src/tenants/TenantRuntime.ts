/**
 * The per-tenant runtime shared by `run` (every tenant in one process, TenantsRun.ts) and a cluster runner
 * (src/cluster/ClusterRunner.ts): a tenant's configuration as the process serves it, and each tenant's connector on a
 * loopback port of its own, found by the public front (src/cluster/RunnerFront.ts) that routes `/t/<id>/…` to it.
 */
import { Context, Effect, Layer, Schema, type Scope } from "effect"
import { HttpServer } from "effect/http"
import { join } from "node:path"
import type { ConnectorConfig } from "../config/Config.ts"
import type { ConnectorSettings } from "../config/Settings.ts"
import { ConnectorLayer, type ConnectorOptions } from "../connector/Connector.ts"
import { DecryptPool, SharedDecryptWorkers } from "../graph/notifications/crypto/DecryptPool.ts"
import { defaultTenant, type TenantConfig, type TenantId } from "../state/StateStore.ts"

/** The path prefix a tenant's requests carry on the public port: none for `default`, `/t/<id>` for the others. */
export const tenantPrefix = (tenant: TenantId): string => (tenant === defaultTenant ? "" : `/t/${tenant}`)

/**
 * The base URL Graph posts a tenant's notifications to: the tenant's publicBaseUrl with `/t/<id>` appended unless it
 * already ends with it, so a subscription can only ever reach its own tenant.
 */
export const tenantPublicBase = (publicBaseUrl: string, tenant: TenantId): string => {
  const base = publicBaseUrl.replace(/\/+$/, "")
  const prefix = tenantPrefix(tenant)
  return base.endsWith(prefix) ? base : base + prefix
}

/**
 * A stored tenant's configuration in this process: the process's settings (http, dataDir, log, security, …) with the
 * tenant's keys over them, its files under `<dataDir>/tenants/<id>`, its public URLs under `/t/<id>`.
 */
export const storedTenantConfig = (process: ConnectorConfig, tenant: TenantId, stored: TenantConfig): ConnectorConfig => {
  const config: ConnectorConfig = { ...process, ...stored, dataDir: join(process.dataDir, "tenants", tenant) }
  const publicBaseUrl = config.notifications.publicBaseUrl ?? `http://127.0.0.1:${process.http.port}`
  return { ...config, notifications: { ...config.notifications, publicBaseUrl: tenantPublicBase(publicBaseUrl, tenant) } }
}

/** Why a tenant's connector did not start (its state store, its server's port, …). */
export type ServeError = Layer.Error<ReturnType<typeof ConnectorLayer>> | TenantServerError

export class TenantServerError extends Schema.TaggedError<TenantServerError>()("TenantServerError", {
  message: Schema.String
}) {}

/** The tenants' connectors of this process, each on a loopback port. */
export interface TenantServers {
  /** The loopback port of a tenant's connector while it runs here. */
  readonly local: (tenant: TenantId) => number | undefined
  readonly running: () => ReadonlyArray<TenantId>
  /** The services of a tenant's connector while it runs here (its status board, for the overview). */
  readonly context: (tenant: TenantId) => Context.Context<Layer.Success<ReturnType<typeof ConnectorLayer>>> | undefined
  /**
   * Builds the tenant's connector in the current scope, on a loopback port (whatever `settings.http` says); its port is
   * known to `local` until the scope closes, and forgotten first, so no new request reaches the tenant while it stops.
   */
  readonly serve: (
    tenant: TenantId,
    settings: ConnectorSettings,
    options: ConnectorOptions
  ) => Effect.Effect<{ readonly port: number; readonly context: Context.Context<Layer.Success<ReturnType<typeof ConnectorLayer>>> }, ServeError, Scope.Scope>
}

/**
 * The tenants' servers of this process, in the current scope. The process's decryption workers are started here, once
 * (`decryptWorkers` and `decryptWorkerNice` of the configuration file, 0 = one per core), and every tenant's connector decrypts on them with
 * its own keys (docs/scaling.md, "Memory per tenant"): a tenant's own `notifications.decryptWorkers` is not used.
 */
export const makeTenantServers = Effect.fnUntraced(function*(decryptWorkers: number, decryptWorkerNice?: number) {
  const workers = yield* Layer.build(SharedDecryptWorkers.layer(decryptWorkers, decryptWorkerNice))
  const decryptPool = DecryptPool.layerShared.pipe(Layer.provide(Layer.succeedContext(workers)))
  const ports = new Map<TenantId, number>()
  const contexts = new Map<TenantId, Context.Context<Layer.Success<ReturnType<typeof ConnectorLayer>>>>()
  const serve = Effect.fnUntraced(function*(tenant: TenantId, settings: ConnectorSettings, options: ConnectorOptions) {
    const loopback: ConnectorSettings = { ...settings, http: { ...settings.http, host: "127.0.0.1", port: 0 } }
    const connector = yield* Layer.build(ConnectorLayer(loopback, { ...options, tenant, decryptPool }))
    const address = Context.get(connector, HttpServer.HttpServer).address
    if (!("port" in address)) return yield* new TenantServerError({ message: `tenant ${tenant}: its server has no TCP port` })
    ports.set(tenant, address.port)
    contexts.set(tenant, connector)
    yield* Effect.addFinalizer(() => Effect.sync(() => ports.delete(tenant) && contexts.delete(tenant)))
    return { port: address.port, context: connector }
  })
  return { local: (tenant) => ports.get(tenant), running: () => [...ports.keys()], context: (tenant) => contexts.get(tenant), serve } satisfies TenantServers
})
