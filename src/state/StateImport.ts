/**
 * `state import` (docs/state.md, Moving to PostgreSQL): the state of one store copied into another — from the files
 * of a data directory into PostgreSQL. Every tenant (`default`, the configuration file's, and each stored one) with
 * its refresh tokens, subscription state, notification keys and certificates, and PBX → Teams sessions. Records go
 * through the stores' own interface: read and opened with the state keys, sealed again with the current key as the
 * target writes them, so no secret is ever written in clear. Desired PBX commands and owner epochs are not copied
 * (the files keep them in memory only). A target that already holds any of these records is refused, with every
 * conflict at once, before anything is written.
 */
import { Effect, Option, Schema } from "effect"
import { defaultTenant, type TenantId } from "./Records.ts"
import type { StateStore } from "./StateStore.ts"

type Store = StateStore["Service"]

export class ImportRefused extends Schema.TaggedError<ImportRefused>()("ImportRefused", {
  conflicts: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `state import: the target holds state already, nothing was copied (${this.conflicts.length} conflict(s)):\n` +
      this.conflicts.map((line) => `  - ${line}`).join("\n")
  }
}

export interface ImportReport {
  /** Stored tenants copied (besides `default`). */
  readonly tenants: number
  readonly refreshTokens: number
  readonly subscriptionStates: number
  readonly certificateSets: number
  readonly presenceSessions: number
}

/** What of `tenant` the target holds already, in words. */
const conflictsOf = Effect.fnUntraced(function*(to: Store, tenant: TenantId, stored: boolean) {
  const found: Array<string> = []
  if (stored && Option.isSome(yield* to.tenants.get(tenant))) found.push(`tenant ${tenant} is stored there`)
  const accounts = yield* to.refreshTokens.accounts(tenant)
  if (accounts.length > 0) found.push(`tenant ${tenant} has refresh tokens there (${accounts.join(", ")})`)
  if (Option.isSome(yield* to.subscriptions.load(tenant))) found.push(`tenant ${tenant} has subscription state there`)
  if (Option.isSome(yield* to.certificates.load(tenant))) found.push(`tenant ${tenant} has notification keys there`)
  if (Option.isSome(yield* to.presenceSessions.load(tenant))) found.push(`tenant ${tenant} has PBX → Teams sessions there`)
  return found
})

/** Copies one tenant's records; how many of each kind. */
const copyRecords = Effect.fnUntraced(function*(from: Store, to: Store, tenant: TenantId) {
  const accounts = yield* from.refreshTokens.accounts(tenant)
  for (const account of accounts) {
    const token = yield* from.refreshTokens.get(tenant, account)
    if (Option.isSome(token)) yield* to.refreshTokens.put(tenant, account, token.value)
  }
  const subscriptions = yield* from.subscriptions.load(tenant)
  if (Option.isSome(subscriptions)) yield* to.subscriptions.save(tenant, subscriptions.value)
  const certificates = yield* from.certificates.load(tenant)
  if (Option.isSome(certificates)) yield* to.certificates.save(tenant, certificates.value)
  const sessions = yield* from.presenceSessions.load(tenant)
  if (Option.isSome(sessions)) yield* to.presenceSessions.save(tenant, sessions.value)
  return {
    refreshTokens: accounts.length,
    subscriptionStates: Option.isSome(subscriptions) ? 1 : 0,
    certificateSets: Option.isSome(certificates) ? 1 : 0,
    presenceSessions: Option.isSome(sessions) ? 1 : 0
  }
})

/** Copies everything of `from` into `to`; refused (nothing written) when `to` holds any of it already. */
export const importState = Effect.fn("StateImport.run")(function*(from: Store, to: Store) {
  const tenants = yield* from.tenants.list
  const conflicts = [
    ...(yield* conflictsOf(to, defaultTenant, false)),
    ...(yield* Effect.forEach(tenants, (tenant) => conflictsOf(to, tenant.id, true))).flat()
  ]
  if (conflicts.length > 0) return yield* new ImportRefused({ conflicts })
  // The tenant first: its records belong to it.
  for (const tenant of tenants) yield* to.tenants.put(tenant.id, tenant.config)
  const counts = yield* Effect.forEach([defaultTenant, ...tenants.map((t) => t.id)], (tenant) => copyRecords(from, to, tenant))
  return {
    tenants: tenants.length,
    refreshTokens: counts.reduce((n, c) => n + c.refreshTokens, 0),
    subscriptionStates: counts.reduce((n, c) => n + c.subscriptionStates, 0),
    certificateSets: counts.reduce((n, c) => n + c.certificateSets, 0),
    presenceSessions: counts.reduce((n, c) => n + c.presenceSessions, 0)
  } satisfies ImportReport
})
