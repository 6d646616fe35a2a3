/**
 * An Effect application that embeds the connector: the configuration is a typed value built in code, decoded with
 * the same schema as a configuration file, and the connector runs as a Layer next to the application's own code,
 * which reads the status board and reports when all four lights are green.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer, Option, Stream } from "effect"
import {
  allGreen,
  type ConnectorConfigInput,
  ConnectorLayer,
  decodeConfig,
  loggingLayer,
  settingsFromConfig,
  StatusBoard,
  type StatusSnapshot
} from "teams-presence-connector"

/** What differs between installations (and between the simulators and the real systems). */
export interface EmbedOptions {
  /** Serves the identity platform and Graph; omit for Microsoft's own endpoints. The Graph simulator serves both. */
  readonly microsoftBaseUrl?: string | undefined
  readonly tenantId: string
  readonly clientId: string
  readonly clientSecret: string
  /** The delegated technical account that holds the presence subscriptions (password flow). */
  readonly account: { readonly username: string; readonly password: string }
  /** The public base URL under which Graph reaches this process (it delivers to <publicBaseUrl>/graph/notifications). */
  readonly publicBaseUrl: string
  /** The port of the connector's HTTP server: status page, Graph webhook and the PBX's websocket (/pbx). */
  readonly port: number
  readonly pbx: { readonly masterPbx: string; readonly appPassword: string }
  readonly adminPassword: string
  readonly dataDir: string
  readonly logLevel?: "debug" | "info" | "warning" | "error" | undefined
}

/** The configuration as a typed value: the same keys as connector.yaml (docs/configuration.md). */
export const connectorConfig = (options: EmbedOptions): ConnectorConfigInput => ({
  tenantId: options.tenantId,
  clientId: options.clientId,
  app: { clientSecret: options.clientSecret },
  accounts: [{ name: "presence-1", username: options.account.username, flow: "password", password: options.account.password }],
  ...(options.microsoftBaseUrl !== undefined
    ? {
      graph: {
        loginBaseUrl: options.microsoftBaseUrl,
        graphBaseUrl: options.microsoftBaseUrl,
        jwksUrl: `${options.microsoftBaseUrl}/common/discovery/v2.0/keys`
      }
    }
    : {}),
  notifications: { mode: "push", publicBaseUrl: options.publicBaseUrl },
  pbx: { masterPbx: options.pbx.masterPbx, appPassword: options.pbx.appPassword },
  http: { host: "127.0.0.1", port: options.port },
  admin: { password: options.adminPassword },
  dataDir: options.dataDir,
  log: { level: options.logLevel ?? "info", format: "json" }
})

/** The whole connector as a Layer: decoded (every problem at once, as a ConfigError), turned into settings, started. */
export const EmbeddedConnector = (options: EmbedOptions) =>
  Layer.unwrap(Effect.gen(function*() {
    const config = yield* decodeConfig(connectorConfig(options), "embedded configuration")
    const settings = yield* settingsFromConfig(config)
    return ConnectorLayer(settings).pipe(Layer.provide(loggingLayer(config.log)))
  }))

/** The application's side: waits on the status board until every light is green, then reports it. */
export const reportWhenGreen: Effect.Effect<StatusSnapshot, never, StatusBoard> = Effect.gen(function*() {
  const board = yield* StatusBoard
  const green = yield* board.changes.pipe(Stream.filter(allGreen), Stream.runHead)
  const snapshot = Option.isSome(green) ? green.value : yield* board.get
  const { counts } = snapshot
  yield* Console.log(
    `all lights green: ${counts.licensed} of ${counts.teamsUsers} Teams users synchronised to the PBX ` +
      `(${counts.unlicensed} unlicensed, ${counts.unmatched} unmatched, ${counts.ambiguous} ambiguous)`
  )
  return snapshot
})

/** The program: the connector runs for as long as the application does; an interrupt shuts it down in order. */
export const main = (options: EmbedOptions) =>
  reportWhenGreen.pipe(Effect.andThen(Effect.never), Effect.provide(EmbeddedConnector(options)))

// Run directly (`node docs/examples/embed.ts`), it takes its options from the environment.
if (import.meta.main) {
  const env = (name: string): string => process.env[name] ?? ""
  main({
    microsoftBaseUrl: process.env["MICROSOFT_BASE_URL"],
    tenantId: env("TENANT_ID"),
    clientId: env("CLIENT_ID"),
    clientSecret: env("CLIENT_SECRET"),
    account: { username: env("ACCOUNT_USERNAME"), password: env("ACCOUNT_PASSWORD") },
    publicBaseUrl: env("PUBLIC_BASE_URL"),
    port: Number(process.env["PORT"] ?? 8080),
    pbx: { masterPbx: env("MASTER_PBX"), appPassword: env("PBX_APP_PASSWORD") },
    adminPassword: env("ADMIN_PASSWORD"),
    dataDir: process.env["DATA_DIR"] ?? "./data"
  }).pipe(NodeRuntime.runMain)
}
