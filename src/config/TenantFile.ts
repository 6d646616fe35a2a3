/**
 * A tenant's configuration file for `tenants add|update`: the tenant's part of a configuration file (Microsoft tenant
 * and app, accounts, PBX, matching, mapping, timers, admin password, PBX → Teams; TenantConfig in src/state/Records.ts),
 * checked as `check-config` checks a whole one — every problem at once, with its value, secrets never echoed. The
 * process's own settings (HTTP, data directory, database, log, security, shutdown) are refused with where they belong.
 * No environment variable applies: they configure the process, not one tenant.
 */
import { Effect, Schema } from "effect"
import { readFile } from "node:fs/promises"
import type { Problem } from "../domain/Problems.ts"
import { TenantConfig, TenantId } from "../state/Records.ts"
import { ConfigError, decodeConfig, parseConfigText } from "./ConfigFile.ts"

const processKeys: ReadonlySet<string> = new Set(["http", "dataDir", "database", "log", "security", "shutdown"])

const record = (value: unknown): Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value) ? value as Record<string, unknown> : {}

/** The tenant id of a command line, or the problem with it. */
export const parseTenantId = (id: string, source: string): Effect.Effect<TenantId, ConfigError> =>
  Schema.decodeUnknownEffect(TenantId)(id).pipe(
    Effect.mapError(() =>
      new ConfigError({
        source,
        problems: [{ path: "<id>", message: `"${id}" is not a tenant id: lower-case letters, digits and inner hyphens, at most 63 (such as contoso-1)` }]
      })
    )
  )

/** Decodes a parsed tenant file: the tenant's configuration, or one ConfigError with every problem. */
export const decodeTenantConfig = Effect.fn("TenantFile.decode")(function*(raw: unknown, source: string) {
  const input = record(raw)
  const misplaced: Array<Problem> = Object.keys(input).filter((key) => processKeys.has(key)).map((key) => ({
    path: key,
    message: "a setting of the process, not of a tenant: it belongs in the connector's configuration file (docs/configuration.md)"
  }))
  const rest = Object.fromEntries(Object.entries(input).filter(([key]) => !processKeys.has(key)))
  const decoded = yield* decodeConfig(rest, source).pipe(
    Effect.catchTag("ConfigError", (error) => Effect.fail(new ConfigError({ source, problems: [...misplaced, ...error.problems] })))
  )
  if (misplaced.length > 0) return yield* new ConfigError({ source, problems: misplaced })
  const tenant: TenantConfig = {
    tenantId: decoded.tenantId,
    clientId: decoded.clientId,
    ...(decoded.app !== undefined ? { app: decoded.app } : {}),
    accounts: decoded.accounts,
    graph: decoded.graph,
    notifications: decoded.notifications,
    pbx: decoded.pbx,
    matching: decoded.matching,
    mapping: decoded.mapping,
    timers: decoded.timers,
    admin: decoded.admin,
    pbxToTeams: decoded.pbxToTeams
  }
  return tenant
})

/** One line per tenant for `tenants list`: never a secret, only whether each is set. */
export const describeTenant = (id: string, version: number, config: TenantConfig): string =>
  [
    `${id} (version ${version}):`,
    `Microsoft tenant ${config.tenantId}, app ${config.clientId};`,
    `${config.accounts.length} account(s);`,
    `${config.notifications.mode} mode;`,
    `master PBX ${config.pbx.masterPbx};`,
    `own status password ${config.admin.password === undefined ? "not set" : "set"}`
  ].join(" ")

/** Reads and decodes a tenant file (YAML or JSON). */
export const loadTenantFile = Effect.fn("TenantFile.load")(function*(path: string) {
  const text = yield* Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (cause) => new ConfigError({ source: path, problems: [{ path: "(file)", message: `cannot read: ${(cause as Error).message}` }] })
  })
  return yield* decodeTenantConfig(yield* parseConfigText(text, path), path)
})
