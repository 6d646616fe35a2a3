/**
 * The state store's part of the configuration: `database` (PostgreSQL instead of the files in `dataDir`) and the
 * state keys, which only the environment carries (CONNECTOR_STATE_KEY, CONNECTOR_STATE_KEY_PREVIOUS) so that they
 * never sit in a configuration file beside what they protect. Checked with the rest of the configuration, at once.
 */
import { Effect, Option, Redacted } from "effect"
import type { Problem } from "../domain/Problems.ts"
import { Sealer, splitKeys } from "../state/Sealer.ts"
import { describeStateLocation, type StateSettings } from "../state/StateSettings.ts"
import type { ConnectorConfig } from "./Config.ts"

type Env = Readonly<Record<string, string | undefined>>

const keyHelp = "32 random bytes in base64 (openssl rand -base64 32); docs/state.md"

const present = (env: Env, name: string): Redacted.Redacted<string> | undefined => {
  const value = env[name]
  return value === undefined || value.trim() === "" ? undefined : Redacted.make(value)
}

/** Whether the (environment-applied, undecoded) input names a database. */
const usesDatabase = (raw: unknown): boolean => {
  const database = raw !== null && typeof raw === "object" ? (raw as Record<string, unknown>)["database"] : undefined
  const url = database !== null && typeof database === "object" ? (database as Record<string, unknown>)["url"] : undefined
  return typeof url === "string" && url !== ""
}

/** The problems of the state keys: required with a database, and each key well formed. Never shows a key. */
export const stateKeyProblems = Effect.fnUntraced(function*(raw: unknown, env: Env) {
  const problems: Array<Problem> = []
  const current = present(env, "CONNECTOR_STATE_KEY")
  const previous = Option.match(Option.fromNullishOr(present(env, "CONNECTOR_STATE_KEY_PREVIOUS")), {
    onNone: () => [],
    onSome: splitKeys
  })
  if (current === undefined && usesDatabase(raw)) {
    problems.push({
      path: "CONNECTOR_STATE_KEY",
      message: `required with database.url, so that the database never holds a secret in clear: ${keyHelp}`
    })
  }
  const check = (path: string, keys: Parameters<typeof Sealer.make>[0]) =>
    Sealer.make(keys).pipe(
      Effect.match({ onFailure: (error) => void problems.push({ path, message: error.message }), onSuccess: () => undefined })
    )
  if (current !== undefined) yield* check("CONNECTOR_STATE_KEY", { current, previous: [] })
  if (previous.length > 0) yield* check("CONNECTOR_STATE_KEY_PREVIOUS", { current: undefined, previous })
  return problems as ReadonlyArray<Problem>
})

/** The state store's settings: PostgreSQL when `database.url` is set, else the files in the data directory. */
export const stateSettingsOf = (config: ConnectorConfig, dataDir: string): StateSettings => ({
  dataDir,
  database: config.database.url === undefined ? undefined : { url: config.database.url, maxConnections: config.database.maxConnections }
})

/** The `state:` line of `check-config`: where the state is and which key seals it (its id only, never the key). */
export const describeState = Effect.fnUntraced(function*(config: ConnectorConfig, env: Env) {
  const current = present(env, "CONNECTOR_STATE_KEY")
  const previous = present(env, "CONNECTOR_STATE_KEY_PREVIOUS")
  const sealer = yield* Sealer.make({ current, previous: previous === undefined ? [] : splitKeys(previous) }).pipe(Effect.option)
  const location = describeStateLocation(stateSettingsOf(config, config.dataDir))
  const key = Option.match(sealer, {
    onNone: () => "a state key that is not valid",
    onSome: (s) =>
      s.keyId === undefined
        ? "secrets in clear (no CONNECTOR_STATE_KEY)"
        : `secrets sealed with state key ${s.keyId}${s.keyIds.length > 1 ? ` (${s.keyIds.length - 1} previous key(s) open older ones)` : ""}`
  })
  return `state:             ${location}; ${key}`
})
