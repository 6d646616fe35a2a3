/**
 * `state rekey`: every secret in the state store sealed again with the current state key, the step of a key rotation
 * (docs/state.md, Rotating the state key). It opens the store the configuration names, as `run` does.
 */
import { Console, Effect, type Option } from "effect"
import { Command } from "effect/cli"
import { ConfigError, loadConfigFile } from "../config/ConfigFile.ts"
import { settingsFromConfig } from "../config/Settings.ts"
import { describeStateLocation, openStateStore } from "../state/StateSettings.ts"
import type { StateStore } from "../state/StateStore.ts"
import { configFlag, reportAndExit, resolveConfigPath } from "./ConfigPath.ts"

/**
 * Runs `use` with the state store the configuration file names (found as `run` finds it), open for its duration; `where`
 * says where the state is, for messages.
 */
export const withConfiguredStore = <A, E, R>(
  config: Option.Option<string>,
  command: string,
  use: (store: StateStore["Service"], where: string) => Effect.Effect<A, E, R>
) =>
  Effect.gen(function*() {
    const path = resolveConfigPath(config)
    if (path === undefined) {
      return yield* new ConfigError({ source: command, problems: [{ path: "--config", message: "no configuration file given" }] })
    }
    const settings = yield* settingsFromConfig(yield* loadConfigFile(path))
    return yield* Effect.scoped(Effect.flatMap(openStateStore(settings.state), (store) => use(store, describeStateLocation(settings.state))))
  })

const rekey = Command.make("rekey", { config: configFlag }, ({ config }) =>
  withConfiguredStore(config, "state rekey", (store, where) =>
    Effect.gen(function*() {
      const report = yield* store.rekey
      yield* Console.log(
        `state rekey (${where}): ${report.resealed} secret(s) sealed again with the current ` +
          `state key, ${report.records} record(s) looked at. Once every process runs with the new key, ` +
          "CONNECTOR_STATE_KEY_PREVIOUS can be removed."
      )
    })).pipe(Effect.catchTags({ ConfigError: reportAndExit, StateStoreError: reportAndExit }))).pipe(
    Command.withDescription(
      "Seal every secret in the state store (refresh tokens, clientStates, notification keys, tenant secrets) with the " +
        "current CONNECTOR_STATE_KEY: those sealed with a key in CONNECTOR_STATE_KEY_PREVIOUS and, in the files, those " +
        "still in clear. Safe to repeat; docs/state.md describes the whole rotation."
    )
  )

export const stateCommand = Command.make("state").pipe(
  Command.withDescription("Administer the connector's state store (docs/state.md)"),
  Command.withSubcommands([rekey])
)
