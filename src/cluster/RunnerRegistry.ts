/**
 * What each runner of a cluster holds, for the status page and `/cluster/status` (docs/scaling.md): every runner
 * writes its own row of `connector_cluster_runners` every few seconds — the tenants it owns (with their owner epoch
 * and where their PBX sockets are served, SocketMode.ts) and the PBX sockets its tenants' connectors hold — and removes it when it stops. Any runner reads the whole
 * table, so the page shows the cluster whichever runner serves it; a row that has not been written for
 * `staleAfter` is shown as gone (a killed runner) and dropped after an hour.
 */
import { Clock, Effect, Schedule, Schema } from "effect"
import type { SqlClient } from "effect/sql"
import type { ClusterRunnerView, ClusterView } from "../status/StatusBoard.ts"

/** How often a runner writes its row, and after how long without a write it counts as gone. */
export const publishInterval = "3 seconds"
const staleAfterSeconds = 12

const RunnerRow = Schema.Struct({
  runner: Schema.String,
  started_at_ms: Schema.NumberFromString,
  seen_at_ms: Schema.NumberFromString,
  age_seconds: Schema.NumberFromString,
  tenants: Schema.fromJsonString(Schema.Array(Schema.Struct({
    tenant: Schema.String,
    epoch: Schema.Number,
    since: Schema.Number,
    sockets: Schema.optional(Schema.Literals(["any", "owner"]))
  }))),
  pbx_sockets: Schema.fromJsonString(Schema.Array(Schema.Struct({
    tenant: Schema.String,
    pbx: Schema.String,
    master: Schema.Boolean,
    loggedIn: Schema.Boolean,
    since: Schema.optional(Schema.Number)
  })))
})

export const makeRunnerRegistry = Effect.fnUntraced(function*(sql: SqlClient.SqlClient, runnerId: string) {
  yield* sql`CREATE TABLE IF NOT EXISTS connector_cluster_runners (
    runner text PRIMARY KEY,
    started_at timestamptz NOT NULL,
    seen_at timestamptz NOT NULL,
    tenants text NOT NULL,
    pbx_sockets text NOT NULL
  )`.pipe(
    // Runners starting together race on a new database: PostgreSQL's CREATE TABLE IF NOT EXISTS may then fail on its
    // catalog's unique index for the loser (seen in the failover test); once the table exists it succeeds.
    Effect.retry({ times: 3, schedule: Schedule.spaced("200 millis") })
  )
  const startedAt = new Date(yield* Clock.currentTimeMillis)

  /** Writes this runner's row (seen now). */
  const publish = (state: Pick<ClusterRunnerView, "tenants" | "pbxSockets">) =>
    sql`INSERT INTO connector_cluster_runners (runner, started_at, seen_at, tenants, pbx_sockets)
        VALUES (${runnerId}, ${startedAt}, now(), ${JSON.stringify(state.tenants)}, ${JSON.stringify(state.pbxSockets)})
        ON CONFLICT (runner) DO UPDATE SET started_at = EXCLUDED.started_at, seen_at = now(),
          tenants = EXCLUDED.tenants, pbx_sockets = EXCLUDED.pbx_sockets`.pipe(Effect.asVoid)

  /** Removes this runner's row (an orderly stop) and rows not written for an hour. */
  const remove = sql`DELETE FROM connector_cluster_runners WHERE runner = ${runnerId} OR seen_at < now() - interval '1 hour'`.pipe(Effect.asVoid)

  /** Every runner's row, as the status page shows it. */
  const view = sql`SELECT runner,
        (extract(epoch FROM started_at) * 1000)::bigint::text AS started_at_ms,
        (extract(epoch FROM seen_at) * 1000)::bigint::text AS seen_at_ms,
        extract(epoch FROM now() - seen_at)::numeric(12, 3)::text AS age_seconds,
        tenants, pbx_sockets
      FROM connector_cluster_runners ORDER BY runner`.pipe(
    Effect.flatMap(Schema.decodeUnknownEffect(Schema.Array(RunnerRow))),
    Effect.map((rows): ClusterView => ({
      runner: runnerId,
      runners: rows.map((row) => ({
        id: row.runner,
        alive: row.age_seconds < staleAfterSeconds,
        startedAt: row.started_at_ms,
        seenAt: row.seen_at_ms,
        tenants: row.tenants,
        pbxSockets: row.pbx_sockets
      }))
    }))
  )
  return { publish, remove, view }
})
