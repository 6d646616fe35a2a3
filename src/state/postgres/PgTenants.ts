/**
 * Tenants in PostgreSQL: one row each, the configuration as jsonb with its secrets sealed, a version that grows with
 * each put. Every put and remove notifies `connector_tenants` in its transaction (delivered on commit only), which
 * wakes the changes stream of every process.
 */
import type { PgClient } from "@effect/sql-pg"
import { Effect, Option, Schema } from "effect"
import type { Sealer } from "../Sealer.ts"
import { codecs, decodeOpened, encodeSealed } from "../Sealing.ts"
import { type Tenant, type TenantConfig, TenantId } from "../Records.ts"
import type { StateStoreShape } from "../StateStoreShape.ts"
import type { StateStoreError } from "../StateStoreError.ts"
import { tenantChanges, type Versions } from "../TenantChanges.ts"
import { listenForever } from "./PgListen.ts"
import { decodeRows, Int64, unavailable } from "./PgRows.ts"

export const tenantsChannel = "connector_tenants"

const TenantRow = Schema.Struct({ id: TenantId, version: Int64, config: Schema.Unknown })
const VersionRow = Schema.Struct({ id: TenantId, version: Int64 })

/** The tables holding a tenant's state; removing a tenant empties them for it. tenant_owner stays: epochs never go back. */
const stateTables = ["refresh_tokens", "subscription_state", "certificates", "pbx_desired", "presence_sessions", "pbx_directory"] as const

export const makePgTenants = (sql: PgClient.PgClient, sealer: Sealer["Service"]): StateStoreShape["tenants"] => {
  const open = (row: typeof TenantRow.Type) =>
    decodeOpened(sealer, row.id, codecs.tenantConfig, row.config, `tenants row ${row.id}`, "always").pipe(
      Effect.map((config): Tenant => ({ id: row.id, version: row.version, config }))
    )

  const list = sql`SELECT id, version, config FROM tenants ORDER BY id`.pipe(
    Effect.mapError(unavailable()),
    decodeRows(TenantRow, "tenants"),
    Effect.flatMap((rows) => Effect.forEach(rows, open)),
    Effect.withSpan("StateStore.tenants.list")
  )

  const get = Effect.fn("StateStore.tenants.get")(function*(id: TenantId) {
    const rows = yield* sql`SELECT id, version, config FROM tenants WHERE id = ${id}`.pipe(
      Effect.mapError(unavailable(id)),
      decodeRows(TenantRow, "tenants", id)
    )
    return rows[0] === undefined ? Option.none<Tenant>() : Option.some(yield* open(rows[0]))
  })

  const put = Effect.fn("StateStore.tenants.put")(function*(id: TenantId, config: TenantConfig) {
    const stored = yield* encodeSealed(sealer, id, codecs.tenantConfig, config, "always")
    const rows = yield* sql.withTransaction(Effect.gen(function*() {
      const written = yield* sql`INSERT INTO tenants (id, config, version) VALUES (${id}, ${sql.json(stored)}, 1)
        ON CONFLICT (id) DO UPDATE SET config = EXCLUDED.config, version = tenants.version + 1, updated_at = now()
        RETURNING id, version`
      yield* sql`SELECT pg_notify(${tenantsChannel}, ${id})`
      return written
    })).pipe(Effect.mapError(unavailable(id)), decodeRows(VersionRow, "tenants", id))
    return { id, version: rows[0]!.version, config }
  })

  const remove = Effect.fn("StateStore.tenants.remove")(function*(id: TenantId) {
    return yield* sql.withTransaction(Effect.gen(function*() {
      const removed = yield* sql`DELETE FROM tenants WHERE id = ${id} RETURNING id`
      for (const table of stateTables) yield* sql`DELETE FROM ${sql(table)} WHERE tenant_id = ${id}`
      yield* sql`SELECT pg_notify(${tenantsChannel}, ${id})`
      return removed.length > 0
    })).pipe(Effect.mapError(unavailable(id)))
  })

  const versions: Effect.Effect<Versions, StateStoreError> = sql`SELECT id, version FROM tenants`.pipe(
    Effect.mapError(unavailable()),
    decodeRows(VersionRow, "tenants"),
    Effect.map((rows) => new Map(rows.map((r) => [r.id, r.version])))
  )

  const changes = tenantChanges(versions, ({ wake }) => listenForever(sql, tenantsChannel, () => wake, wake))

  return { list, get, put, remove, changes }
}
