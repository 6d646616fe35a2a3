/**
 * Turns the configuration file's one schema into the options each part takes (Graph sign-in, subscriptions, PBX,
 * mapping, matching). Reading the certificate and the matching file is the only IO here.
 */
import { readFile } from "node:fs/promises"
import { resolve } from "node:path"
import { Effect, Redacted } from "effect"
import * as YAML from "yaml"
import type { ConnectorConfig } from "./Config.ts"
import { type BackoffPolicy, defaultBackoffPolicy } from "../domain/LoginBackoff.ts"
import { defaultStatusPageLimits, type StatusPageLimits } from "../status/StatusEvents.ts"
import { buildMappingConfig, type MappingConfig } from "../domain/PresenceMapping.ts"
import { accountRef, AppCredentialRef, type CredentialRef, type GraphSettings } from "../graph/client/GraphSettings.ts"
import { defaultSubscriptionSettings, type SubscriptionSettingsOptions } from "../graph/subscriptions/SubscriptionSettings.ts"
import { makePbxSettings, type PbxSettingsOptions } from "../pbx/PbxSettings.ts"
import { ConfigError } from "./ConfigFile.ts"
import type { MatchStrategy } from "../connector/Matching.ts"
import type { StateSettings } from "../state/StateSettings.ts"
import { stateSettingsOf } from "./StateConfig.ts"
import { pbxToTeamsSettings } from "../connector/calls/PbxToTeamsConfig.ts"
import type { PbxToTeamsSettings } from "../connector/calls/PbxToTeamsSettings.ts"

export interface FlowSettings {
  readonly mode: "push" | "poll"
  readonly strategy: MatchStrategy
  readonly mapping: MappingConfig
  /** The credential that lists Teams users (the app when configured, else the first account). */
  readonly usersCredential: CredentialRef
  readonly replanDebounceMillis: number
  /** Teams users are re-read this often even without a change notification (and in poll mode). */
  readonly usersRefreshMinutes: number
  readonly clearOnShutdown: boolean
}

export interface ConnectorSettings {
  /** The status page's limits and its login backoff; defaults when left out. */
  readonly statusPage?: { readonly loginBackoff: BackoffPolicy; readonly limits: StatusPageLimits } | undefined
  readonly graph: GraphSettings
  readonly subscriptions: SubscriptionSettingsOptions
  readonly pbx: PbxSettingsOptions
  readonly flow: FlowSettings
  readonly http: { readonly host: string; readonly port: number }
  readonly adminPassword: Redacted.Redacted<string> | undefined
  /** With many tenants in one process: the provider's admin password, which opens this tenant's page too. */
  readonly providerPassword?: Redacted.Redacted<string> | undefined
  /** Where refresh tokens, subscriptions and notification keys are kept: files in the data directory, or PostgreSQL. */
  readonly state: StateSettings
  /** PBX → Teams (docs/pbx-to-teams.md); off when undefined. */
  readonly pbxToTeams?: PbxToTeamsSettings | undefined
}

const readText = (path: string, what: string) =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (cause) =>
      new ConfigError({ source: path, problems: [{ path: what, message: `cannot read ${path}: ${(cause as Error).message}` }] })
  })

const loadMatchingFile = Effect.fnUntraced(function*(path: string) {
  const text = yield* readText(path, "matching.file")
  const parsed = yield* Effect.try({
    try: () => (path.endsWith(".json") ? JSON.parse(text) : YAML.parse(text)) as unknown,
    catch: (cause) =>
      new ConfigError({ source: path, problems: [{ path: "matching.file", message: `not valid: ${(cause as Error).message}` }] })
  })
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    return yield* new ConfigError({
      source: path,
      problems: [{ path: "matching.file", message: "expected an object { \"<Teams id or UPN>\": \"<PBX h323 or guid>\" }" }]
    })
  }
  const pairs: Record<string, string> = {}
  for (const [key, value] of Object.entries(parsed)) if (typeof value === "string") pairs[key] = value
  return pairs
})

/** The application credential: a certificate (both files read now), a client secret, or none. */
const appCredential = Effect.fnUntraced(function*(app: ConnectorConfig["app"]) {
  if (app === undefined) return undefined
  if (app.certificateFile !== undefined && app.privateKeyFile !== undefined) {
    return {
      _tag: "Certificate",
      certificatePem: yield* readText(app.certificateFile, "app.certificateFile"),
      privateKeyPem: Redacted.make(yield* readText(app.privateKeyFile, "app.privateKeyFile"))
    } satisfies GraphSettings["app"]
  }
  return app.clientSecret !== undefined ? { _tag: "ClientSecret", secret: app.clientSecret } satisfies GraphSettings["app"] : undefined
})

const subscriptionSettings = (config: ConnectorConfig, usersCredential: CredentialRef) =>
  defaultSubscriptionSettings({
    mode: config.notifications.mode,
    publicBaseUrl: config.notifications.publicBaseUrl ?? `http://127.0.0.1:${config.http.port}`,
    notificationPath: config.notifications.notificationPath,
    lifecyclePath: config.notifications.lifecyclePath,
    includeResourceData: config.notifications.includeResourceData,
    presenceExpiryMinutes: config.timers.presenceExpiryMinutes,
    presenceRenewMinutes: config.timers.presenceRenewMinutes,
    usersExpiryMinutes: config.timers.usersExpiryMinutes,
    usersRenewMinutes: config.timers.usersRenewMinutes,
    reconcileMinutes: config.timers.reconcileMinutes,
    verifySeconds: config.timers.verifySeconds,
    pollSeconds: config.timers.pollSeconds,
    deleteOnShutdown: config.notifications.deleteSubscriptionsOnShutdown,
    jwksUrl: config.graph.jwksUrl,
    appId: config.clientId,
    usersCredential,
    pollCredential: usersCredential,
    maxBodyBytes: config.notifications.maxBodyBytes,
    decryptWorkers: config.notifications.decryptWorkers,
    decryptWorkerNice: config.notifications.decryptWorkerNice,
    floodLatencyBudgetMillis: config.notifications.floodLatencyBudgetMillis
  })

const pbxSettings = (config: ConnectorConfig, loginBackoff: BackoffPolicy) =>
  makePbxSettings({
    loginBackoff,
    maxFrameBytes: config.pbx.maxFrameBytes,
    appPassword: config.pbx.appPassword,
    masterPbx: config.pbx.masterPbx,
    contact: config.pbx.contact,
    path: config.pbx.path,
    ...(config.pbx.appName !== undefined ? { appName: config.pbx.appName } : {}),
    licensing: config.pbx.licensing,
    ...(config.pbx.licenceName !== undefined ? { licenceName: config.pbx.licenceName } : {}),
    ...(config.pbx.maxUsers !== undefined ? { maxUsers: config.pbx.maxUsers } : {})
  })

const flowSettings = Effect.fnUntraced(function*(config: ConnectorConfig, usersCredential: CredentialRef) {
  const strategy: MatchStrategy = config.matching.strategy === "file"
    ? { _tag: "file", pairs: yield* loadMatchingFile(config.matching.file ?? "") }
    : { _tag: config.matching.strategy }
  return {
    mode: config.notifications.mode,
    strategy,
    mapping: buildMappingConfig(config.mapping.overrides, config.mapping.note).config,
    usersCredential,
    replanDebounceMillis: config.timers.replanDebounceSeconds * 1000,
    usersRefreshMinutes: config.timers.usersRenewMinutes,
    clearOnShutdown: config.shutdown.clearPresences
  } satisfies FlowSettings
})

export const settingsFromConfig = Effect.fn("Settings.fromConfig")(function*(config: ConnectorConfig) {
  const dataDir = resolve(config.dataDir)
  const app = yield* appCredential(config.app)
  const graph: GraphSettings = {
    tenantId: config.tenantId,
    clientId: config.clientId,
    loginBaseUrl: config.graph.loginBaseUrl,
    graphBaseUrl: config.graph.graphBaseUrl,
    app,
    accounts: config.accounts.map((a) => ({ name: a.name, username: a.username, flow: a.flow, password: a.password }))
  }
  const firstAccount = config.accounts[0]
  const usersCredential: CredentialRef = app !== undefined || firstAccount === undefined
    ? AppCredentialRef
    : accountRef(firstAccount.name)
  const loginBackoff: BackoffPolicy = {
    ...defaultBackoffPolicy,
    maxDelayMillis: config.security.maxLoginDelaySeconds * 1000,
    refuseAfterFailures: config.security.refuseAfterFailedLogins,
    refuseMillis: config.security.refuseMinutes * 60_000
  }
  const pbxToTeams = yield* pbxToTeamsSettings(config).pipe(
    Effect.mapError((cause) =>
      new ConfigError({ source: "pbxToTeams.app", problems: [{ path: "pbxToTeams.app", message: `cannot read a certificate file: ${String(cause)}` }] })
    )
  )
  return {
    statusPage: { loginBackoff, limits: { ...defaultStatusPageLimits, maxEventStreams: config.security.maxEventStreams } },
    graph,
    subscriptions: subscriptionSettings(config, usersCredential),
    pbx: pbxSettings(config, loginBackoff),
    flow: yield* flowSettings(config, usersCredential),
    http: config.http,
    adminPassword: config.admin.password,
    state: stateSettingsOf(config, dataDir),
    pbxToTeams
  } satisfies ConnectorSettings
})
