/**
 * `state rekey`: every secret in the state store sealed again with the current state key, the step of a key rotation
 * (docs/state.md, Rotating the state key); `state import`: the files of a data directory copied into PostgreSQL. It opens the store the configuration names, as `run` does.
 */
import { existsSync } from "node:fs"
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { ConfigError, loadConfigFile } from "../config/ConfigFile.ts"
import { settingsFromConfig } from "../config/Settings.ts"
import { describeStateLocation, openStateStore } from "../state/StateSettings.ts"
import type { StateStore } from "../state/StateStore.ts"
import { importState } from "../state/StateImport.ts"
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

const fromFlag = Flag.String("from").pipe(
  Flag.withDescription("The data directory whose files are copied; default: the configuration's dataDir"),
  Flag.optional
)

const importCommand = Command.make("import", { config: configFlag, from: fromFlag }, ({ config, from }) =>
  Effect.gen(function*() {
    const path = resolveConfigPath(config)
    if (path === undefined) {
      return yield* new ConfigError({ source: "state import", problems: [{ path: "--config", message: "no configuration file given" }] })
    }
    const settings = yield* settingsFromConfig(yield* loadConfigFile(path))
    if (settings.state.database === undefined) {
      return yield* new ConfigError({
        source: "state import",
        problems: [{ path: "database.url", message: "the import copies into PostgreSQL: set database.url or CONNECTOR_DATABASE_URL" }]
      })
    }
    const dataDir = Option.getOrElse(from, () => settings.state.dataDir)
    if (!existsSync(dataDir)) {
      return yield* new ConfigError({ source: "state import", problems: [{ path: "--from", message: `${dataDir} does not exist` }] })
    }
    const source = { dataDir, keys: settings.state.keys }
    yield* Effect.scoped(Effect.gen(function*() {
      const report = yield* importState(yield* openStateStore(source), yield* openStateStore(settings.state))
      yield* Console.log(
        `state import: from ${describeStateLocation(source)} into ${describeStateLocation(settings.state)}: ` +
          `tenant default and ${report.tenants} stored tenant(s), ${report.refreshTokens} refresh token(s), ` +
          `${report.subscriptionStates} subscription state(s), ${report.certificateSets} set(s) of notification keys, ` +
          `${report.presenceSessions} PBX → Teams session record(s); secrets sealed with the current state key. ` +
          "The files are left as they were: remove them once the connector runs on PostgreSQL."
      )
    }))
  }).pipe(Effect.catchTags({ ConfigError: reportAndExit, StateStoreError: reportAndExit, ImportRefused: reportAndExit }))).pipe(
    Command.withDescription(
      "Copy the state kept in files (the data directory) into the PostgreSQL the configuration names: tenants, refresh " +
        "tokens, subscription state, notification keys, sessions, sealed with CONNECTOR_STATE_KEY; refused, with " +
        "every conflict, when the database already holds any of it (docs/state.md)"
    )
  )

export const stateCommand = Command.make("state").pipe(
  Command.withDescription("Administer the connector's state store (docs/state.md)"),
  Command.withSubcommands([rekey, importCommand])
)
