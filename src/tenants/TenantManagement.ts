/**
 * Managing the stored tenants — add, update, remove, list — in one place for `tenants add|update|remove|list`
 * (src/cli/TenantCommands.ts) and the admin HTTP API (src/tenants/TenantsApi.ts). A tenant's configuration is
 * checked as `check-config` checks a configuration (every problem at once) before anything is stored; tenant
 * `default` is the configuration file and is refused. A running process follows the store: a tenant added is
 * started, one removed stopped with its Graph subscriptions deleted (TenantSupervisor.ts).
 */
import { Effect, Option, Schema } from "effect"
import { ConfigError } from "../config/ConfigFile.ts"
import { describeTenant, parseTenantId } from "../config/TenantFile.ts"
import { defaultTenant, type Tenant, type TenantConfig, type TenantId } from "../state/Records.ts"
import type { StateStore } from "../state/StateStore.ts"

/** `add` of a tenant that exists, or `update`/`remove` of one that does not. */
export class TenantPresence extends Schema.TaggedError<TenantPresence>()("TenantPresence", {
  tenant: Schema.String,
  found: Schema.Boolean,
  message: Schema.String
}) {}

type Store = StateStore["Service"]

/** The id, refused when it is not one or names tenant default. */
export const managedId = Effect.fnUntraced(function*(id: string, source: string) {
  const tenant = yield* parseTenantId(id, source)
  if (tenant === defaultTenant) {
    return yield* new ConfigError({
      source,
      problems: [{ path: "<id>", message: "tenant default is the connector's configuration file: change it there" }]
    })
  }
  return tenant
})

/**
 * Stores a new tenant (version 1); refused when the id exists. It starts from nothing: state left under the id by a
 * removed tenant (written back by its stopping connector) is removed first.
 */
export const addTenant = Effect.fn("TenantManagement.add")(function*(store: Store, id: TenantId, config: TenantConfig) {
  if (Option.isSome(yield* store.tenants.get(id))) {
    return yield* new TenantPresence({ tenant: id, found: true, message: `tenant ${id} exists already: use tenants update` })
  }
  yield* store.tenants.remove(id)
  return yield* store.tenants.put(id, config)
})

/** Replaces a tenant's configuration (its version grows by one); refused when there is no such tenant. */
export const updateTenant = Effect.fn("TenantManagement.update")(function*(store: Store, id: TenantId, config: TenantConfig) {
  if (Option.isNone(yield* store.tenants.get(id))) {
    return yield* new TenantPresence({ tenant: id, found: false, message: `there is no tenant ${id}: use tenants add` })
  }
  return yield* store.tenants.put(id, config)
})

/**
 * Removes a tenant with everything stored for it (tokens, subscription state, keys). A tenant is there when its
 * configuration is: state left without one (written back by a stopping connector) is removed too, but is no tenant.
 */
export const removeTenant = Effect.fn("TenantManagement.remove")(function*(store: Store, id: TenantId) {
  const existing = yield* store.tenants.get(id)
  yield* store.tenants.remove(id)
  if (Option.isNone(existing)) return yield* new TenantPresence({ tenant: id, found: false, message: `there is no tenant ${id}` })
})

/** A stored tenant without its secrets (only whether its own status password is set), for the API and the list. */
export const TenantSummary = Schema.Struct({
  id: Schema.String,
  version: Schema.Number,
  tenantId: Schema.String,
  clientId: Schema.String,
  accounts: Schema.Array(Schema.String),
  mode: Schema.String,
  masterPbx: Schema.String,
  ownStatusPassword: Schema.Boolean,
  description: Schema.String
})
export type TenantSummary = typeof TenantSummary.Type

export const summarize = (tenant: Tenant): TenantSummary => ({
  id: tenant.id,
  version: tenant.version,
  tenantId: tenant.config.tenantId,
  clientId: tenant.config.clientId,
  accounts: tenant.config.accounts.map((account) => account.name),
  mode: tenant.config.notifications.mode,
  masterPbx: tenant.config.pbx.masterPbx,
  ownStatusPassword: tenant.config.admin.password !== undefined,
  description: describeTenant(tenant.id, tenant.version, tenant.config)
})
