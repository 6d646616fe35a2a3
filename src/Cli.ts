/**
 * The command line: `run`, `demo`, `check-config`, `login`, `simulate`. With no sub-command and no configuration file
 * the embedded demo starts, so `npm start` on a fresh machine shows the whole flow.
 */
import { existsSync } from "node:fs"
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import packageJson from "../package.json" with { type: "json" }
import { ConfigError, describeConfig, loadConfigFile } from "./connector/ConfigFile.ts"

/** Where `run` looks for a configuration when `--config` is not given. */
export const defaultConfigPaths = ["connector.yaml", "connector.yml", "connector.json"] as const

const configFlag = Flag.String("config").pipe(
  Flag.withAlias("c"),
  Flag.withDescription("Configuration file (YAML or JSON); default: $CONNECTOR_CONFIG, then ./connector.yaml|.yml|.json"),
  Flag.optional
)

const portFlag = Flag.Int("port").pipe(
  Flag.withDescription("HTTP port of the status page and endpoints (default: $PORT or 8080)"),
  Flag.optional
)

/** Resolves the configuration file: the flag, then CONNECTOR_CONFIG, then a default file in the working directory. */
export const resolveConfigPath = (flag: Option.Option<string>): string | undefined =>
  Option.getOrUndefined(flag) ?? process.env["CONNECTOR_CONFIG"] ?? defaultConfigPaths.find((path) => existsSync(path))

/** Prints the problems and makes the process exit 1, without a stack trace: the message is the whole story. */
const reportConfigError = (error: ConfigError) =>
  Console.error(error.message).pipe(Effect.andThen(Effect.sync(() => { process.exitCode = 1 })))

const demoNotice = Console.log(
  [
    "teams-presence-connector: no configuration file found (--config, $CONNECTOR_CONFIG or ./connector.yaml).",
    "The embedded demo (Graph simulator + PBX simulator + connector) is not part of this build yet.",
    "To run against real systems, write a configuration file (see docs/configuration.md) and run:",
    "  npm start -- run --config connector.yaml"
  ].join("\n")
)

const runConnector = (path: string) =>
  Effect.gen(function*() {
    const config = yield* loadConfigFile(path)
    yield* Console.log(describeConfig(config))
    yield* Console.error("teams-presence-connector: the connector service is not part of this build yet.")
    process.exitCode = 1
  }).pipe(Effect.catchTag("ConfigError", reportConfigError))

const run = Command.make("run", { config: configFlag }, ({ config }) => {
  const path = resolveConfigPath(config)
  return path === undefined ? demoNotice : runConnector(path)
}).pipe(Command.withDescription("Run the connector with a configuration file (the embedded demo when there is none)"))

const demo = Command.make("demo", { port: portFlag }, () => demoNotice).pipe(
  Command.withDescription("Run the embedded demo: Graph simulator, PBX simulator (master + slave) and the connector")
)

const checkConfig = Command.make("check-config", { config: configFlag }, ({ config }) =>
  Effect.gen(function*() {
    const path = resolveConfigPath(config)
    if (path === undefined) {
      return yield* new ConfigError({ source: "check-config", problems: [{ path: "--config", message: "no configuration file given" }] })
    }
    const loaded = yield* loadConfigFile(path)
    yield* Console.log(`${path}: valid\n${describeConfig(loaded)}`)
  }).pipe(Effect.catchTag("ConfigError", reportConfigError))).pipe(Command.withDescription("Check a configuration file: every problem at once, or a summary with secrets masked"))

export const rootCommand = Command.make("teams-presence-connector", { config: configFlag }, ({ config }) => {
  const path = resolveConfigPath(config)
  return path === undefined ? demoNotice : runConnector(path)
}).pipe(
  Command.withDescription("Microsoft Teams presence → innovaphone PBX presence"),
  Command.withSubcommands([run, demo, checkConfig])
)

export const cli = Command.run(rootCommand, { version: packageJson.version })
