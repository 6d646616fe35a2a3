/**
 * The published PBX directories in PostgreSQL (docs/scaling.md, "PBX sockets on any runner"): one row per tenant and
 * PBX, latest wins; each publish notifies `connector_pbx_directory` with the tenant, delivered on commit. No secrets.
 */
import type { PgClient } from "@effect/sql-pg"
import { Effect, Option, Queue, Schema, Stream } from "effect"
import { PbxDirectoryRecord, TenantId } from "../Records.ts"
import type { DirectoryWakeup, StateStoreShape } from "../StateStoreShape.ts"
import { listenForever } from "./PgListen.ts"
import { decodeRows, unavailable } from "./PgRows.ts"

export const directoryChannel = "connector_pbx_directory"

const Row = Schema.Struct({ record: PbxDirectoryRecord })
const encodeRecord = Schema.encodeSync(PbxDirectoryRecord)

/** Wake-ups from one LISTEN per subscriber; `resync` after every (re)LISTEN. Bounded: the oldest are dropped. */
const pgDirectoryWakeups = (sql: PgClient.PgClient): Stream.Stream<DirectoryWakeup> => Stream.unwrap(Effect.gen(function*() {
  const queue = yield* Queue.sliding<DirectoryWakeup>(1024)
  const onNotify = (payload: string) =>
    Schema.decodeUnknownEffect(TenantId)(payload).pipe(
      Effect.flatMap((tenant) => Queue.offer(queue, { kind: "changed", tenant })),
      Effect.catch(() => Effect.logWarning(`state store: ignoring a ${directoryChannel} notification that is not a tenant id`)),
      Effect.asVoid
    )
  yield* listenForever(sql, directoryChannel, onNotify, Queue.offer(queue, { kind: "resync" }).pipe(Effect.asVoid))
  return Stream.fromQueue(queue)
}))

export const makePgDirectory = (sql: PgClient.PgClient): StateStoreShape["directory"] => ({
  publish: Effect.fn("StateStore.directory.publish")(function*(tenant: TenantId, record: PbxDirectoryRecord) {
    yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`INSERT INTO pbx_directory (tenant_id, pbx, record) VALUES (${tenant}, ${record.pbx}, ${sql.json(encodeRecord(record))})
        ON CONFLICT (tenant_id, pbx) DO UPDATE SET record = EXCLUDED.record, updated_at = now()`
      yield* sql`SELECT pg_notify(${directoryChannel}, ${tenant})`
    })).pipe(Effect.mapError(unavailable(tenant)))
  }),
  load: Effect.fn("StateStore.directory.load")(function*(tenant: TenantId, pbx: string) {
    const rows = yield* sql`SELECT record FROM pbx_directory WHERE tenant_id = ${tenant} AND pbx = ${pbx}`.pipe(
      Effect.mapError(unavailable(tenant)),
      decodeRows(Row, "pbx_directory", tenant)
    )
    return Option.map(Option.fromNullishOr(rows[0]), (row) => row.record)
  }),
  wakeups: pgDirectoryWakeups(sql)
})
