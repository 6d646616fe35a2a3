/**
 * Loads the configuration: a JSON or YAML file, then environment variables (which override the file and are the
 * preferred place for secrets), decoded with the one ConnectorConfig schema. Every problem is reported with its path,
 * all at once, so an administrator fixes a file in one round.
 */
import { readFile } from "node:fs/promises"
import { Effect, Redacted, Schema } from "effect"
import * as YAML from "yaml"
import { ConnectorConfig } from "./Config.ts"
import { buildMappingConfig } from "../domain/PresenceMapping.ts"
import { pbxToTeamsProblems } from "../connector/calls/PbxToTeamsConfig.ts"
import { describeProblems, type Problem, ProblemList, schemaProblems } from "../domain/Problems.ts"
import { annotateProblems, setAside } from "./ConfigProblems.ts"
import { stateKeyProblems } from "./StateConfig.ts"
import { describeDatabase } from "../state/postgres/PgStateStore.ts"

export type ConfigProblem = Problem

export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  source: Schema.String,
  problems: ProblemList
}) {
  override get message(): string {
    return describeProblems(this.source, this.problems)
  }
}

/** Environment variables and the configuration keys they set. Secrets belong here rather than in the file. */
export const environmentVariables: ReadonlyArray<{ readonly name: string; readonly path: ReadonlyArray<string>; readonly number?: boolean }> = [
  { name: "CONNECTOR_TENANT_ID", path: ["tenantId"] },
  { name: "CONNECTOR_CLIENT_ID", path: ["clientId"] },
  { name: "CONNECTOR_CLIENT_SECRET", path: ["app", "clientSecret"] },
  { name: "CONNECTOR_PBXTOTEAMS_CLIENT_SECRET", path: ["pbxToTeams", "app", "clientSecret"] },
  { name: "CONNECTOR_PBX_PASSWORD", path: ["pbx", "appPassword"] },
  { name: "CONNECTOR_MASTER_PBX", path: ["pbx", "masterPbx"] },
  { name: "CONNECTOR_ADMIN_PASSWORD", path: ["admin", "password"] },
  { name: "CONNECTOR_PUBLIC_URL", path: ["notifications", "publicBaseUrl"] },
  { name: "CONNECTOR_MODE", path: ["notifications", "mode"] },
  { name: "CONNECTOR_DATA_DIR", path: ["dataDir"] },
  { name: "CONNECTOR_DATABASE_URL", path: ["database", "url"] },
  { name: "CONNECTOR_LOG_LEVEL", path: ["log", "level"] },
  { name: "CONNECTOR_LOG_FORMAT", path: ["log", "format"] },
  { name: "CONNECTOR_HTTP_HOST", path: ["http", "host"] },
  { name: "PORT", path: ["http", "port"], number: true }
]

/** `CONNECTOR_ACCOUNT_<NAME>_PASSWORD`, NAME in upper case with other characters as `_`. */
export const accountPasswordVariable = (accountName: string): string =>
  `CONNECTOR_ACCOUNT_${accountName.toUpperCase().replace(/[^A-Z0-9]/g, "_")}_PASSWORD`

type Env = Readonly<Record<string, string | undefined>>

const setPath = (root: Record<string, unknown>, path: ReadonlyArray<string>, value: unknown): void => {
  let node = root
  for (const key of path.slice(0, -1)) {
    const next = node[key]
    if (next === null || typeof next !== "object" || Array.isArray(next)) node[key] = {}
    node = node[key] as Record<string, unknown>
  }
  node[path[path.length - 1]!] = value
}

/** Applies the environment to the raw (undecoded) file content. */
export const applyEnvironment = (raw: unknown, env: Env): unknown => applyEnvironmentTracked(raw, env).raw

/** The environment applied, and which key each variable set (`pbx.appPassword` → `CONNECTOR_PBX_PASSWORD`). */
export const applyEnvironmentTracked = (raw: unknown, env: Env): { readonly raw: unknown; readonly sources: ReadonlyMap<string, string> } => {
  const sources = new Map<string, string>()
  const root: Record<string, unknown> = raw !== null && typeof raw === "object" && !Array.isArray(raw)
    ? structuredClone(raw as Record<string, unknown>)
    : {}
  for (const variable of environmentVariables) {
    const value = env[variable.name]
    if (value === undefined || value === "") continue
    setPath(root, variable.path, variable.number === true && /^\d+$/.test(value) ? Number(value) : value)
    sources.set(variable.path.join("."), variable.name)
  }
  const accounts = root["accounts"]
  if (Array.isArray(accounts)) {
    accounts.forEach((account: unknown, i) => {
      if (account === null || typeof account !== "object") return
      const name = (account as Record<string, unknown>)["name"]
      if (typeof name !== "string") return
      const password = env[accountPasswordVariable(name)]
      if (password === undefined || password === "") return
      ;(account as Record<string, unknown>)["password"] = password
      sources.set(`accounts[${i}].password`, accountPasswordVariable(name))
    })
  }
  return { raw: root, sources }
}

/** Loopback addresses are accepted over plain HTTP: that is where the simulators run. */
const isLoopback = (hostname: string): boolean =>
  hostname === "localhost" || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname)

/** Checks that span several keys: what the schema alone cannot say. */
export const semanticProblems = (config: ConnectorConfig): ReadonlyArray<ConfigProblem> => {
  const problems: Array<ConfigProblem> = []
  if (config.notifications.mode === "push") {
    if (config.notifications.publicBaseUrl === undefined) {
      problems.push({
        path: "notifications.publicBaseUrl",
        message: "required in push mode: the public HTTPS URL Graph posts to (or CONNECTOR_PUBLIC_URL); use mode: poll without one"
      })
    }
    const publicUrl = config.notifications.publicBaseUrl === undefined ? undefined : new URL(config.notifications.publicBaseUrl)
    if (publicUrl !== undefined && publicUrl.protocol !== "https:" && !isLoopback(publicUrl.hostname)) {
      problems.push({
        path: "notifications.publicBaseUrl",
        message: "Microsoft Graph delivers notifications only to HTTPS endpoints: use https:// (a reverse proxy with a public certificate, docs/webhook.md)"
      })
    }
    if (config.accounts.length === 0) {
      problems.push({
        path: "accounts",
        message: "push mode needs at least one delegated technical account (presence subscriptions are delegated-only)"
      })
    }
  } else if (config.app === undefined) {
    problems.push({ path: "app", message: "poll mode reads presence with the application credential: set app.clientSecret or a certificate" })
  }
  if (config.app !== undefined) {
    const { clientSecret, certificateFile, privateKeyFile } = config.app
    if (clientSecret === undefined && certificateFile === undefined) {
      problems.push({ path: "app", message: "set clientSecret (or CONNECTOR_CLIENT_SECRET), or certificateFile and privateKeyFile" })
    }
    if ((certificateFile === undefined) !== (privateKeyFile === undefined)) {
      problems.push({ path: "app", message: "certificateFile and privateKeyFile go together" })
    }
  }
  const names = new Set<string>()
  config.accounts.forEach((account, i) => {
    if (names.has(account.name.toLowerCase())) {
      problems.push({ path: `accounts[${i}].name`, message: `"${account.name}" is used twice; account names must be unique` })
    }
    names.add(account.name.toLowerCase())
    if (account.flow === "password" && account.password === undefined) {
      problems.push({
        path: `accounts[${i}].password`,
        message: `required for the password flow (or ${accountPasswordVariable(account.name)}); or use flow: deviceCode`
      })
    }
  })
  if (config.matching.strategy === "file" && config.matching.file === undefined) {
    problems.push({ path: "matching.file", message: "required when matching.strategy is file" })
  }
  const mapping = buildMappingConfig(config.mapping.overrides, config.mapping.note)
  for (const issue of mapping.issues) {
    if (issue.message.includes("not a Teams activity")) problems.push({ path: `mapping.overrides.${issue.key}`, message: issue.message })
  }
  if (config.timers.presenceRenewMinutes >= config.timers.presenceExpiryMinutes) {
    problems.push({
      path: "timers.presenceRenewMinutes",
      message: `must be shorter than timers.presenceExpiryMinutes (${config.timers.presenceExpiryMinutes})`
    })
  }
  problems.push(...pbxToTeamsProblems(config))
  if (config.timers.usersRenewMinutes >= config.timers.usersExpiryMinutes) {
    problems.push({
      path: "timers.usersRenewMinutes",
      message: `must be shorter than timers.usersExpiryMinutes (${config.timers.usersExpiryMinutes})`
    })
  }
  return problems
}

/**
 * Decodes raw content (already parsed, environment applied) into a configuration, with every problem at once: the
 * schema's and the cross-key checks' (run on the input with the faulty keys set aside, ConfigProblems.ts), each with
 * its value and, given `sources`, the environment variable it came from. Given `env`, the state keys it carries are
 * checked too (StateConfig.ts).
 */
export const decodeConfig = (
  raw: unknown,
  source: string,
  sources: ReadonlyMap<string, string> = new Map(),
  env?: Env
): Effect.Effect<ConnectorConfig, ConfigError> =>
  Effect.gen(function*() {
    const stateKeys = env === undefined ? [] : yield* stateKeyProblems(raw, env)
    return yield* Schema.decodeUnknownEffect(ConnectorConfig)(raw, { errors: "all", onExcessProperty: "error" }).pipe(
      Effect.mapError((error) => {
        const problems = schemaProblems(error.issue, "misspelled? see docs/configuration.md")
        const rest = setAside(raw, problems)
        const crossKey = rest === undefined ? [] : semanticProblems(rest).filter((p) => !problems.some((q) => q.path === p.path))
        return new ConfigError({ source, problems: [...annotateProblems([...problems, ...crossKey], raw, sources), ...stateKeys] })
      }),
      Effect.flatMap((config) => {
        const problems = semanticProblems(config)
        return problems.length === 0 && stateKeys.length === 0
          ? Effect.succeed(config)
          : Effect.fail(new ConfigError({ source, problems: [...annotateProblems(problems, raw, sources), ...stateKeys] }))
      })
    )
  })

/** Parses JSON or YAML text (JSON is tried first for `.json` files; YAML accepts both). */
export const parseConfigText = (text: string, source: string): Effect.Effect<unknown, ConfigError> =>
  Effect.try({
    try: () => {
      if (source.endsWith(".json")) return JSON.parse(text) as unknown
      const document = YAML.parseDocument(text, { prettyErrors: true })
      if (document.errors.length > 0) throw document.errors[0]
      return document.toJS() as unknown
    },
    catch: (cause) =>
      new ConfigError({
        source,
        problems: [{ path: "(file)", message: `not valid ${source.endsWith(".json") ? "JSON" : "YAML"}: ${String((cause as Error).message ?? cause)}` }]
      })
  })

export const loadConfigFile = Effect.fn("ConfigFile.load")(function*(path: string, env: Env = process.env) {
  const text = yield* Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (cause) =>
      new ConfigError({ source: path, problems: [{ path: "(file)", message: `cannot read: ${(cause as Error).message}` }] })
  })
  const raw = yield* parseConfigText(text, path)
  const applied = applyEnvironmentTracked(raw ?? {}, env)
  return yield* decodeConfig(applied.raw, path, applied.sources, env)
})

const mask = (secret: Redacted.Redacted<string> | undefined): string => secret === undefined ? "not set" : "set (hidden)"

/** A readable summary for `check-config` and the start-up log; secrets only as "set"/"not set". */
export const describeConfig = (config: ConnectorConfig): string => {
  const lines = [
    `tenant:            ${config.tenantId}`,
    `client id:         ${config.clientId}`,
    `app credential:    ${
      config.app === undefined
        ? "none"
        : config.app.certificateFile !== undefined
        ? `certificate ${config.app.certificateFile}`
        : `client secret ${mask(config.app.clientSecret)}`
    }`,
    `accounts:          ${
      config.accounts.length === 0
        ? "none"
        : config.accounts.map((a) => `${a.name} (${a.username}, ${a.flow}${a.flow === "password" ? `, password ${mask(a.password)}` : ""})`).join("; ")
    }`,
    `capacity:          ${config.accounts.length * 650} users in push mode (650 per account)`,
    `mode:              ${config.notifications.mode}${
      config.notifications.mode === "push"
        ? ` → ${config.notifications.publicBaseUrl ?? "?"}${config.notifications.notificationPath} (rich: ${config.notifications.includeResourceData})`
        : ` every ${config.timers.pollSeconds} s`
    }`,
    `PBX:               master ${config.pbx.masterPbx}, websocket path ${config.pbx.path}, contact ${config.pbx.contact}, App password ${mask(config.pbx.appPassword)}`,
    `licensing:         ${config.pbx.licensing}${
      config.pbx.licensing === "appLicence" ? ` (App(${config.pbx.licenceName ?? config.pbx.appName ?? "<App object name>"}))` : ""
    }${config.pbx.maxUsers !== undefined ? `, at most ${config.pbx.maxUsers} users` : ""}`,
    `matching:          ${config.matching.strategy}${config.matching.file !== undefined ? ` (${config.matching.file})` : ""}`,
    `mapping overrides: ${Object.keys(config.mapping.overrides).length === 0 ? "none" : JSON.stringify(config.mapping.overrides)}; note ${config.mapping.note.enabled ? `on (max ${config.mapping.note.maxLength})` : "off"}`,
    `timers:            presence renew ${config.timers.presenceRenewMinutes} min, users renew ${config.timers.usersRenewMinutes} min, reconcile ${config.timers.reconcileMinutes} min`,
    `http:              ${config.http.host}:${config.http.port}; admin password ${mask(config.admin.password)}`,
    `data directory:    ${config.dataDir}`,
    ...(config.database.url === undefined ? [] : [`database:          ${describeDatabase(config.database.url)} (pool ${config.database.maxConnections})`]),
    `log:               ${config.log.level} (${config.log.format})`
  ]
  return lines.join("\n")
}
