/**
 * Where each tenant's files live. Tenant `default` uses exactly today's paths directly in the data directory, so an
 * existing single-tenant installation keeps its tokens, subscriptions and keys; every other tenant has the same files
 * under `tenants/<id>/`, next to its configuration (`tenant.json`).
 */
import { join } from "node:path"
import { defaultTenant, type TenantId } from "../Records.ts"

export const tenantsDir = (dataDir: string) => join(dataDir, "tenants")

/** The directory holding a tenant's own configuration (every tenant, `default` included, when it has one stored). */
export const configDir = (dataDir: string, tenant: TenantId) => join(tenantsDir(dataDir), tenant)

export const configFile = (dataDir: string, tenant: TenantId) => join(configDir(dataDir, tenant), "tenant.json")

/** The directory holding a tenant's state. */
export const stateDir = (dataDir: string, tenant: TenantId) => (tenant === defaultTenant ? dataDir : configDir(dataDir, tenant))

export const accountsDir = (dataDir: string, tenant: TenantId) => join(stateDir(dataDir, tenant), "accounts")

const tokenSuffix = ".refresh-token.json"

export const refreshTokenFile = (dataDir: string, tenant: TenantId, account: string) =>
  join(accountsDir(dataDir, tenant), `${encodeURIComponent(account)}${tokenSuffix}`)

/** The account a file in `accounts/` belongs to; undefined for anything else there (temporary files). */
export const accountOfFile = (name: string): string | undefined =>
  name.endsWith(tokenSuffix) ? decodeURIComponent(name.slice(0, -tokenSuffix.length)) : undefined

export const subscriptionsFile = (dataDir: string, tenant: TenantId) => join(stateDir(dataDir, tenant), "subscriptions.json")

export const certificatesFile = (dataDir: string, tenant: TenantId) => join(stateDir(dataDir, tenant), "rich-notification-keys.json")

/** The commands the PBXs confirmed, for the next start (ConfirmedFile.ts). */
export const confirmedFile = (dataDir: string, tenant: TenantId) => join(stateDir(dataDir, tenant), "pbx-confirmed.json")

export const presenceSessionsFile = (dataDir: string, tenant: TenantId) => join(stateDir(dataDir, tenant), "pbx-to-teams-sessions.json")
