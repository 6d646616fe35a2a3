/**
 * The command line: `run`, `demo`, `check-config`, `login`, `state rekey`, `tenants`, `simulate`. With no sub-command the connector runs when a
 * configuration file is found, else the embedded demo starts, so `npm start` on a fresh machine shows the whole flow;
 * `run` never falls back to the demo. The global `--log-level` wins over log.level and CONNECTOR_LOG_LEVEL.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { NodeHttpClient } from "@effect/platform-node"
import { Console, Effect, Layer, Option, Redacted } from "effect"
import { Command, Flag, GlobalFlag } from "effect/cli"
import packageJson from "../../package.json" with { type: "json" }
import { ConfigError, describeConfig, loadConfigFile } from "../config/ConfigFile.ts"
import { loggingLayer } from "../observability/Logging.ts"
import { describeOtlp, withOtlp } from "../observability/Otlp.ts"
import { runUntilStopped } from "../connector/Shutdown.ts"
import { type DataDirError, prepareDataDir } from "../config/DataDir.ts"
import { settingsFromConfig } from "../config/Settings.ts"
import { loadRunConfiguration } from "../config/RunConfiguration.ts"
import { GraphConfig } from "../graph/client/GraphSettings.ts"
import { TokenService } from "../graph/auth/TokenService.ts"
import { describeStateLocation, defaultTenantStateLayer, stateStoreLayer } from "../state/StateSettings.ts"
import { runTenants } from "../tenants/TenantsRun.ts"
import type { StateStoreError } from "../state/StateStoreError.ts"
import { describeState } from "../config/StateConfig.ts"
import { configFlag, defaultConfigPaths, reportAndExit, resolveConfigPath } from "./ConfigPath.ts"
import { simulateCommand } from "../demo/SimulateCommands.ts"
import { stateCommand } from "./StateCommands.ts"
import { tenantsCommand } from "./TenantCommands.ts"

export { defaultConfigPaths, resolveConfigPath } from "./ConfigPath.ts"

const portFlag = Flag.Int("port").pipe(
  Flag.withDescription("HTTP port of the status page and endpoints (default: $PORT or 8080)"),
  Flag.optional
)

/** Where `run` looked for a configuration, and what to do instead: for an administrator who started it without one. */
export const noConfigurationMessage = (cwd: string, env: NodeJS.ProcessEnv): string =>
  [
    "run: no configuration file found. Looked for:",
    "  --config <file>        not given",
    `  $CONNECTOR_CONFIG      ${env["CONNECTOR_CONFIG"] ? "set" : "not set"}`,
    ...defaultConfigPaths.map((path) => `  ${resolve(cwd, path)}   does not exist`),
    "",
    "To try the connector with simulated Microsoft Graph and PBX:  teams-presence-connector demo",
    "To check a configuration file:                               teams-presence-connector check-config --config <file>",
    "The file's keys: docs/configuration.md; running it as a service: docs/operations.md."
  ].join("\n")

/** Prints the problems and makes the process exit 1, without a stack trace: the message is the whole story. */
const reportConfigError = (error: ConfigError | DataDirError) => reportAndExit(error)

/** The connector could not open its state store: already logged with its reason (runUntilStopped), exit 1. */
const reportStateError = (_: StateStoreError) => Effect.sync(() => { process.exitCode = 1 })

/** The status page's password: configured, else one generated once and kept (0600) in the data directory. */
const adminPasswordFromDataDir = (dataDir: string): { password: Redacted.Redacted<string>; file: string; created: boolean } => {
  const file = join(dataDir, "admin-password")
  if (existsSync(file)) return { password: Redacted.make(readFileSync(file, "utf8").trim()), file, created: false }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const value = crypto.randomUUID().replace(/-/g, "")
  writeFileSync(file + ".tmp", value + "\n", { mode: 0o600 })
  renameSync(file + ".tmp", file)
  return { password: Redacted.make(value), file, created: true }
}

const runConnector = (path: string) =>
  Effect.gen(function*() {
    const { config, logging, settings } = yield* loadRunConfiguration(path)
    return yield* Effect.gen(function*() {
      let adminPassword = settings.adminPassword
      if (adminPassword === undefined) {
        const generated = adminPasswordFromDataDir(settings.state.dataDir)
        adminPassword = generated.password
        yield* Effect.logWarning(
          `no admin password configured: the status page's password is in ${generated.file} (set CONNECTOR_ADMIN_PASSWORD to choose one)`
        )
      }
      yield* Effect.logInfo(`teams-presence-connector ${packageJson.version} starting (${config.notifications.mode} mode)`)
      const otlp = describeOtlp(process.env)
      if (otlp !== undefined) yield* Effect.logInfo(otlp)
      yield* Effect.logDebug(`configuration from ${path}, with the environment (secrets masked):\n${describeConfig(config)}`)
      yield* Effect.logInfo(`state: ${describeStateLocation(settings.state)}`)
      const password = adminPassword
      // Tenant `default` and every stored tenant behind one public port (docs/tenants.md); the store is open for the whole run.
      return yield* runUntilStopped(Layer.build(stateStoreLayer(settings.state)).pipe(
        Effect.flatMap((store) =>
          runTenants({ config, defaultSettings: { ...settings, adminPassword: password }, adminPassword: password }).pipe(Effect.provideContext(store))
        ),
        Effect.tap((run) => Effect.logInfo(`status page: http://127.0.0.1:${run.port}/`))
      )).pipe(Effect.catchTag("StateStoreError", reportStateError))
    }).pipe(Effect.provide(logging))
  }).pipe(Effect.catchTags({ ConfigError: reportConfigError, DataDirError: reportConfigError }))

interface DemoPorts {
  readonly port: Option.Option<number>
  readonly graphPort?: Option.Option<number> | undefined
  readonly pbxPort?: Option.Option<number> | undefined
}

const runDemo = ({ graphPort, pbxPort, port }: DemoPorts) =>
  Effect.gen(function*() {
    const configured = process.env["CONNECTOR_ADMIN_PASSWORD"]
    const password = Redacted.make(configured !== undefined && configured !== "" ? configured : crypto.randomUUID().slice(0, 13))
    const chosenPort = Option.getOrUndefined(port) ?? (process.env["PORT"] ? Number(process.env["PORT"]) : 8080)
    const dataDir = mkdtempSync(join(tmpdir(), "teams-presence-demo-"))
    // Loaded here, not imported above: the demo brings the simulators, which `run` never loads.
    const { printDemoBanner, startDemo } = yield* Effect.promise(() => import("../demo/Demo.ts"))
    return yield* runUntilStopped(Effect.gen(function*() {
      const demo = yield* startDemo({
        port: chosenPort,
        graphPort: Option.getOrUndefined(graphPort ?? Option.none()),
        pbxPort: Option.getOrUndefined(pbxPort ?? Option.none()),
        adminPassword: password,
        dataDir
      })
      yield* printDemoBanner(demo, password, configured === undefined || configured === "")
    }))
  }).pipe(
    Effect.provide(Layer.unwrap(Effect.map(GlobalFlag.LogLevel, (override) => withOtlp(loggingLayer({ level: "info", format: "auto", override })))))
  )

const clusterFlag = Flag.Boolean("cluster").pipe(
  Flag.withDefault(false),
  Flag.withDescription("Join a cluster of runners over the shared PostgreSQL state (docs/scaling.md)")
)

/** `run` is the production command: without a configuration it refuses, rather than quietly running the demo. */
const run = Command.make("run", { config: configFlag, cluster: clusterFlag }, ({ cluster, config }) => {
  const path = resolveConfigPath(config)
  return path === undefined
    ? Console.error(noConfigurationMessage(process.cwd(), process.env)).pipe(Effect.andThen(Effect.sync(() => { process.exitCode = 1 })))
    : cluster
    ? Effect.promise(() => import("../cluster/ClusterCommand.ts")).pipe(Effect.flatMap(({ runClusterRunner }) => runClusterRunner(path)))
    : runConnector(path)
}).pipe(Command.withDescription(
  "Run the connector (the production command) with its configuration file: --config, else $CONNECTOR_CONFIG, else " +
    "./connector.yaml|.yml|.json. Without one it explains where it looked and exits 1; it never starts the demo."
))

const simulatorPortFlag = (name: string, what: string) =>
  Flag.Int(name).pipe(Flag.withDescription(`Port of ${what} (default: any free port)`), Flag.optional)

const demo = Command.make(
  "demo",
  {
    port: portFlag,
    graphPort: simulatorPortFlag("graph-port", "the Graph simulator (identity platform and Graph, with its control API under /_sim)"),
    pbxPort: simulatorPortFlag("pbx-port", "the PBX simulator's control API"),
    cluster: Flag.Boolean("cluster").pipe(
      Flag.withDefault(false),
      Flag.withDescription("The cluster demo instead: PostgreSQL, three runners behind a front, four simulated tenants (docs/scaling.md)")
    )
  },
  ({ cluster, ...ports }) =>
    cluster
      ? Effect.promise(() => import("../demo/ClusterDemoCommand.ts")).pipe(Effect.flatMap(({ runClusterDemo }) => runClusterDemo(ports.port)))
      : runDemo(ports)
).pipe(
  Command.withDescription(
    "Run the embedded demo on this machine: a Graph simulator with 50 Teams users whose presences change, a PBX simulator " +
      "(master + slave) and the connector between them; prints the status page's address and password. Nothing leaves the machine."
  )
)

const checkConfig = Command.make("check-config", { config: configFlag }, ({ config }) =>
  Effect.gen(function*() {
    const path = resolveConfigPath(config)
    if (path === undefined) {
      return yield* new ConfigError({ source: "check-config", problems: [{ path: "--config", message: "no configuration file given" }] })
    }
    const loaded = yield* loadConfigFile(path)
    yield* Console.log(`${path}: valid\n${describeConfig(loaded)}\n${yield* describeState(loaded, process.env)}`)
  }).pipe(Effect.catchTag("ConfigError", reportConfigError))).pipe(Command.withDescription(
  "Check a configuration file and the environment variables that override it: every problem at once (with the value " +
    "and the variable it came from, secrets masked) and exit 1, or a summary with secrets masked and exit 0"
))

const login = Command.make(
  "login",
  {
    config: configFlag,
    account: Flag.String("account").pipe(Flag.withDescription("The account's name in the configuration (accounts[].name)"))
  },
  ({ account, config }) =>
    Effect.gen(function*() {
      const path = resolveConfigPath(config)
      if (path === undefined) {
        return yield* new ConfigError({ source: "login", problems: [{ path: "--config", message: "no configuration file given" }] })
      }
      const settings = yield* settingsFromConfig(yield* loadConfigFile(path))
      yield* prepareDataDir(settings.state.dataDir)
      if (!settings.graph.accounts.some((a) => a.name === account)) {
        return yield* new ConfigError({
          source: path,
          problems: [{ path: "accounts", message: `no account named "${account}" (have: ${settings.graph.accounts.map((a) => a.name).join(", ") || "none"})` }]
        })
      }
      const signIn = Effect.gen(function*() {
        const tokens = yield* TokenService
        yield* tokens.deviceCodeLogin(account, (prompt) => Console.log(`\n${prompt.message}\n\nWaiting for the sign-in to complete…`))
      })
      yield* signIn.pipe(
        Effect.provide(TokenService.layer.pipe(
          Layer.provide(Layer.mergeAll(
            Layer.succeed(GraphConfig, settings.graph),
            NodeHttpClient.layerUndici,
            defaultTenantStateLayer(settings.state)
          ))
        ))
      )
      yield* Console.log(`Signed in: the refresh token of account ${account} is stored (${describeStateLocation(settings.state)}).`)
    }).pipe(
      Effect.catchTags({ ConfigError: reportConfigError, DataDirError: reportConfigError, StateStoreError: reportAndExit }),
      Effect.catchTag("AuthError", (error) =>
        Console.error(`Sign-in failed: ${error.message}\n${error.fix}`).pipe(Effect.andThen(Effect.sync(() => { process.exitCode = 1 }))))
    )
).pipe(Command.withDescription("Sign a delegated technical account in with the device code flow (works with MFA); stores its refresh token"))

export const rootCommand = Command.make("teams-presence-connector", { config: configFlag, port: portFlag }, ({ config, port }) => {
  const path = resolveConfigPath(config)
  return path === undefined ? runDemo({ port }) : runConnector(path)
}).pipe(
  Command.withDescription(
    "Microsoft Teams presence → innovaphone PBX presence. Without a sub-command: `run` when a configuration file is " +
      "found (as `run` looks for it), else `demo`."
  ),
  Command.withSubcommands([run, demo, checkConfig, login, stateCommand, tenantsCommand, simulateCommand])
)

export const cli = Command.run(rootCommand, { version: packageJson.version })
