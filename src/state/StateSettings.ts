/**
 * Which state store a connector opens: PostgreSQL when a database URL is configured (`database.url`,
 * CONNECTOR_DATABASE_URL), else the files in the data directory, exactly where the connector has always kept them.
 * The state keys come from the environment (CONNECTOR_STATE_KEY, CONNECTOR_STATE_KEY_PREVIOUS) unless given. Every
 * failure to open the store is one StateStoreError saying what to do, never naming a secret.
 */
import { Effect, Layer, type Redacted } from "effect"
import { makeFileStore } from "./files/FileStateStore.ts"
import { describeDatabase, makePostgresStore } from "./postgres/PgStateStore.ts"
import { defaultTenant } from "./Records.ts"
import { Sealer, type StateKeys } from "./Sealer.ts"
import { StateStore } from "./StateStore.ts"
import { StateStoreError } from "./StateStoreError.ts"
import { TenantState } from "./TenantState.ts"

export interface StateSettings {
  /** The files backend's directory: the data directory. */
  readonly dataDir: string
  /** PostgreSQL instead of the files (the state key is then required). */
  readonly database?: {
    readonly url: Redacted.Redacted<string>
    /** Pool size (default 10). */
    readonly maxConnections?: number | undefined
  } | undefined
  /** The state keys; default: CONNECTOR_STATE_KEY and CONNECTOR_STATE_KEY_PREVIOUS from the environment. */
  readonly keys?: StateKeys | undefined
}

const notConfigured = (message: string) => new StateStoreError({ reason: "NotConfigured", message })

/** The sealer of the configured keys; an unreadable or malformed key is NotConfigured (its message names the variable). */
const makeSealer = (keys: StateKeys | undefined) =>
  (keys === undefined ? Sealer.keysFromConfig as Effect.Effect<StateKeys, unknown> : Effect.succeed(keys)).pipe(
    Effect.mapError(() => notConfigured("CONNECTOR_STATE_KEY or CONNECTOR_STATE_KEY_PREVIOUS cannot be read from the environment")),
    Effect.flatMap((found) => Sealer.make(found).pipe(Effect.mapError((error) => notConfigured(error.message))))
  )

/** Opens the store in the current scope: PostgreSQL is connected to and migrated before this returns. */
export const openStateStore = Effect.fn("StateStore.open")(function*(settings: StateSettings) {
  const sealer = yield* makeSealer(settings.keys)
  const store = settings.database === undefined
    ? makeFileStore(settings.dataDir)
    : makePostgresStore({
      url: settings.database.url,
      ...(settings.database.maxConnections !== undefined ? { maxConnections: settings.database.maxConnections } : {})
    })
  return yield* store.pipe(Effect.provideService(Sealer, sealer))
})

export const stateStoreLayer = (settings: StateSettings): Layer.Layer<StateStore, StateStoreError> =>
  Layer.effect(StateStore, openStateStore(settings))

/** The store, and tenant `default`'s part of it: what a connector for one tenant runs with. */
export const defaultTenantStateLayer = (settings: StateSettings): Layer.Layer<TenantState | StateStore, StateStoreError> =>
  TenantState.layer(defaultTenant).pipe(Layer.provideMerge(stateStoreLayer(settings)))

/** Where the state is, for messages and `check-config`: never the database password. */
export const describeStateLocation = (settings: Pick<StateSettings, "dataDir" | "database">): string =>
  settings.database === undefined
    ? `files in ${settings.dataDir}`
    : `PostgreSQL ${describeDatabase(settings.database.url)}`
