/**
 * The published PBX directories in PostgreSQL (docs/scaling.md, "PBX sockets on any runner"): one row per tenant and
 * PBX, latest wins; each publish notifies `connector_pbx_directory` with the tenant, delivered on commit, and one
 * LISTEN per store wakes every reader. No secrets.
 */
import type { PgClient } from "@effect/sql-pg"
import { Effect, Option, PubSub, Schema, Scope, Stream } from "effect"
import { PbxDirectoryRecord, TenantId } from "../Records.ts"
import type { DirectoryWakeup, StateStoreShape } from "../StateStoreShape.ts"
import { listenForever } from "./PgListen.ts"
import { decodeRows, unavailable } from "./PgRows.ts"

export const directoryChannel = "connector_pbx_directory"

const Row = Schema.Struct({ record: PbxDirectoryRecord })
const encodeRecord = Schema.encodeSync(PbxDirectoryRecord)

/**
 * Wake-ups from one LISTEN for the whole store (a runner reads the directories of all its tenants), started with the
 * first subscriber and kept for the store's life; every subscriber gets a `resync` first and after every re-LISTEN.
 */
const pgDirectoryWakeups = Effect.fnUntraced(function*(sql: PgClient.PgClient) {
  const scope = yield* Effect.scope
  const hub = yield* PubSub.sliding<DirectoryWakeup>(1024)
  let listening = false
  const onNotify = (payload: string) =>
    Schema.decodeUnknownEffect(TenantId)(payload).pipe(
      Effect.flatMap((tenant) => PubSub.publish(hub, { kind: "changed", tenant })),
      Effect.catch(() => Effect.logWarning(`state store: ignoring a ${directoryChannel} notification that is not a tenant id`)),
      Effect.asVoid
    )
  const listen = Effect.suspend(() => {
    if (listening) return Effect.void
    listening = true
    return listenForever(sql, directoryChannel, onNotify, PubSub.publish(hub, { kind: "resync" }).pipe(Effect.asVoid)).pipe(Scope.provide(scope))
  })
  return Stream.unwrap(Effect.gen(function*() {
    const subscription = yield* PubSub.subscribe(hub)
    // The first subscriber's resync is the one the LISTEN sends once it listens; later ones get theirs at once.
    if (!listening) return yield* Effect.as(listen, Stream.fromSubscription(subscription))
    return Stream.concat(Stream.succeed<DirectoryWakeup>({ kind: "resync" }), Stream.fromSubscription(subscription))
  }))
})

export const makePgDirectory = Effect.fnUntraced(function*(sql: PgClient.PgClient) {
  const wakeups = yield* pgDirectoryWakeups(sql)
  const directory: StateStoreShape["directory"] = {
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
    stamp: Effect.fn("StateStore.directory.stamp")(function*(tenant: TenantId, pbx: string) {
      // updated_at changes with every publish (now() of its transaction); the record itself is not read.
      const rows = yield* sql<{ stamp: string }>`SELECT updated_at::text AS stamp FROM pbx_directory WHERE tenant_id = ${tenant} AND pbx = ${pbx}`.pipe(
        Effect.mapError(unavailable(tenant))
      )
      return Option.fromNullishOr(rows[0]?.stamp)
    }),
    wakeups
  }
  return directory
})
