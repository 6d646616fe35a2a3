/**
 * The PostgreSQL backend of the state store (@effect/sql-pg). It refuses to start without a state key, so no secret
 * ever reaches the database in clear; it migrates the schema at start-up (safe with several processes starting at
 * once) and wakes other processes through LISTEN/NOTIFY.
 */
import { PgClient } from "@effect/sql-pg"
import { Config, Context, Effect, Layer, Option, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { Sealer } from "../Sealer.ts"
import type { StateStoreShape } from "../StateStoreShape.ts"
import { describeCause, StateStoreError } from "../StateStoreError.ts"
import { migrate } from "./migrations/index.ts"
import { makePgDesired } from "./PgDesired.ts"
import { makePgDirectory } from "./PgDirectory.ts"
import { makePgRekey } from "./PgRekey.ts"
import { makePgSecrets } from "./PgSecrets.ts"
import { makePgTenants } from "./PgTenants.ts"

export interface PostgresOptions {
  /** The `database.url` setting; without it, CONNECTOR_DATABASE_URL. postgres://user:password@host:5432/database */
  readonly url?: Redacted.Redacted<string>
  /** Pool size; the LISTENs (changes and wake-up streams) share one more connection beside it. Default 10. */
  readonly maxConnections?: number
}

/** Host, port and database of a URL for messages: never the user's password. */
export const describeDatabase = (url: Redacted.Redacted<string>): string => {
  try {
    const parsed = new URL(Redacted.value(url))
    return `${parsed.hostname}:${parsed.port === "" ? "5432" : parsed.port}${parsed.pathname}`
  } catch {
    return "(a database URL that does not parse)"
  }
}

const notConfigured = (message: string) => new StateStoreError({ reason: "NotConfigured", message })

/** The database client the store uses (also for whatever else shares the database, such as the cluster). */
export const makePgClient = Effect.fnUntraced(function*(options: PostgresOptions) {
  const configured = options.url ?? Option.getOrUndefined(
    yield* Config.option(Config.Redacted("CONNECTOR_DATABASE_URL")).pipe(
      Effect.mapError(() => notConfigured("CONNECTOR_DATABASE_URL cannot be read"))
    )
  )
  if (configured === undefined) {
    return yield* notConfigured("the PostgreSQL state store needs database.url or CONNECTOR_DATABASE_URL (postgres://user:password@host:5432/database)")
  }
  const url = configured as Redacted.Redacted<string>
  const cannotConnect = (error: unknown) =>
    new StateStoreError({
      reason: "Unavailable",
      message: `cannot connect to the state database ${describeDatabase(url)} (${describeCause(error)}): ` +
        "check database.url, the user and password, and that PostgreSQL is running"
    })
  const context = yield* Layer.build(PgClient.layer({
    url,
    maxConnections: options.maxConnections ?? 10,
    applicationName: "teams-presence-connector",
    connectTimeout: "10 seconds"
  })).pipe(Effect.mapError(cannotConnect))
  const sql = Context.get(context, PgClient.PgClient)
  // The pool connects on first use: try once now, so a wrong URL or password stops the start with this message.
  yield* sql`SELECT 1`.pipe(Effect.mapError(cannotConnect))
  return sql
})

export const makePostgresStore = Effect.fnUntraced(function*(options: PostgresOptions) {
  const sealer = yield* Sealer
  if (sealer.keyId === undefined) {
    return yield* notConfigured(
      "the PostgreSQL state store needs CONNECTOR_STATE_KEY, so that the database never holds a secret in clear: " +
        "set it to 32 random bytes in base64 (openssl rand -base64 32) and keep a copy with your backups (docs/state.md)"
    )
  }
  const sql = yield* makePgClient(options)
  const ran = yield* migrate.pipe(
    Effect.provideService(SqlClient.SqlClient, sql),
    Effect.mapError((error) =>
      new StateStoreError({ reason: "Unavailable", message: `could not migrate the state database: ${describeCause(error)}` })
    )
  )
  if (ran.length > 0) yield* Effect.logInfo(`state database migrated: ${ran.map(([id, name]) => `${id}_${name}`).join(", ")}`)

  const secrets = makePgSecrets(sql, sealer)
  const { desired, owners } = makePgDesired(sql)
  const service: StateStoreShape = {
    backend: "postgres",
    tenants: makePgTenants(sql, sealer),
    refreshTokens: secrets.refreshTokens,
    subscriptions: secrets.subscriptions,
    certificates: secrets.certificates,
    presenceSessions: secrets.presenceSessions,
    desired,
    directory: yield* makePgDirectory(sql),
    owners,
    rekey: makePgRekey(sql, sealer)
  }
  return service
})
