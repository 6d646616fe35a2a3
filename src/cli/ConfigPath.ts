/** Where the commands find their configuration file: the `--config` flag, then CONNECTOR_CONFIG, then a default file. */
import { existsSync } from "node:fs"
import { Console, Effect, Option } from "effect"
import { Flag } from "effect/cli"

/** Where `run` looks for a configuration when `--config` is not given. */
export const defaultConfigPaths = ["connector.yaml", "connector.yml", "connector.json"] as const

export const configFlag = Flag.String("config").pipe(
  Flag.withAlias("c"),
  Flag.withDescription("Configuration file (YAML or JSON); default: $CONNECTOR_CONFIG, then ./connector.yaml|.yml|.json"),
  Flag.optional
)

/** Resolves the configuration file: the flag, then CONNECTOR_CONFIG, then a default file in the working directory. */
export const resolveConfigPath = (flag: Option.Option<string>): string | undefined =>
  Option.getOrUndefined(flag) ?? (process.env["CONNECTOR_CONFIG"] || undefined) ?? defaultConfigPaths.find((path) => existsSync(path))

/** Prints an error whose message is the whole story and makes the process exit 1, without a stack trace. */
export const reportAndExit = (error: { readonly message: string }) =>
  Console.error(error.message).pipe(Effect.andThen(Effect.sync(() => { process.exitCode = 1 })))
