/**
 * The connector's state behind one interface, with two backends: files in the data directory (the default; the
 * `default` tenant keeps today's files) and PostgreSQL (shared by several processes; migrations at start-up). Values
 * are Schema-encoded; secrets are Redacted in and out and sealed at rest (docs/state.md).
 */
import { Context, Layer } from "effect"
import { makeFileStore } from "./files/FileStateStore.ts"
import { makePostgresStore, type PostgresOptions } from "./postgres/PgStateStore.ts"
import { Sealer } from "./Sealer.ts"
import type { StateStoreShape } from "./StateStoreShape.ts"

export * from "./Records.ts"
export { StateStoreError } from "./StateStoreError.ts"
export type { DesiredWakeup, DirectoryWakeup, RekeyReport, StateStoreShape } from "./StateStoreShape.ts"

export class StateStore extends Context.Service<StateStore, StateStoreShape>()("teams-presence-connector/state/StateStore") {
  /**
   * Files under `dataDir`: tenant `default` directly in it (today's files), others in `dataDir/tenants/<id>/`.
   * Secrets are sealed when CONNECTOR_STATE_KEY is set. Desired commands and owner epochs live in memory (one process);
   * the confirmed commands are kept in one file per tenant (files/ConfirmedFile.ts) for the next start.
   */
  static readonly layerFiles = (dataDir: string) =>
    Layer.effect(StateStore, makeFileStore(dataDir)).pipe(Layer.provide(Sealer.layerConfig))

  /**
   * PostgreSQL at `options.url` (the `database.url` setting) or CONNECTOR_DATABASE_URL; migrations run at start-up.
   * Requires CONNECTOR_STATE_KEY: the database never holds a secret in clear.
   */
  static readonly layerPostgres = (options: PostgresOptions = {}) =>
    Layer.effect(StateStore, makePostgresStore(options)).pipe(Layer.provide(Sealer.layerConfig))
}
