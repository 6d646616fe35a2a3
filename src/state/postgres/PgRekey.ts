/**
 * `state rekey` in PostgreSQL: every sealed value not sealed with the current key is opened (with a previous key) and
 * sealed again, one transaction per tenant with its rows locked, without touching versions or notifying anyone.
 */
import type { PgClient } from "@effect/sql-pg"
import { Effect, Schema } from "effect"
import type { SqlError } from "effect/sql/SqlError"
import { type SecretSlot, secretSlots, TenantId } from "../Records.ts"
import type { Sealer } from "../Sealer.ts"
import { reseal } from "../Sealing.ts"
import type { RekeyReport } from "../StateStoreShape.ts"
import type { StateStoreError } from "../StateStoreError.ts"
import { decodeRows, unavailable } from "./PgRows.ts"

const JsonRow = Schema.Struct({ key: Schema.String, value: Schema.Unknown })

export const makePgRekey = (sql: PgClient.PgClient, sealer: Sealer["Service"]): Effect.Effect<RekeyReport, StateStoreError> => {
  const rekeyTenant = Effect.fnUntraced(function*(tenant: TenantId) {
    let records = 0
    let resealed = 0
    const each = Effect.fnUntraced(function*(
      rows: ReadonlyArray<typeof JsonRow.Type>,
      slots: (key: string) => (stored: unknown) => ReadonlyArray<SecretSlot>,
      write: (key: string, value: unknown) => Effect.Effect<unknown, StateStoreError>
    ) {
      for (const row of rows) {
        records += 1
        const next = yield* reseal(sealer, tenant, slots(row.key), row.value)
        if (next.changed === 0) continue
        yield* write(row.key, next.stored)
        resealed += next.changed
      }
    })
    const query = (statement: Effect.Effect<ReadonlyArray<unknown>, SqlError>, table: string) =>
      statement.pipe(Effect.mapError(unavailable(tenant)), decodeRows(JsonRow, table, tenant))
    const run = (statement: Effect.Effect<unknown, SqlError>) => Effect.mapError(statement, unavailable(tenant))

    yield* each(
      yield* query(sql`SELECT id AS key, config AS value FROM tenants WHERE id = ${tenant} FOR UPDATE`, "tenants"),
      () => secretSlots.tenant,
      (_, value) => run(sql`UPDATE tenants SET config = ${sql.json(value)} WHERE id = ${tenant}`)
    )
    yield* each(
      yield* query(
        sql`SELECT account AS key, jsonb_build_object('username', username, 'refreshToken', refresh_token_sealed) AS value
          FROM refresh_tokens WHERE tenant_id = ${tenant} FOR UPDATE`,
        "refresh_tokens"
      ),
      secretSlots.refreshToken,
      (account, value) =>
        run(sql`UPDATE refresh_tokens SET refresh_token_sealed = ${(value as { refreshToken: string }).refreshToken}
          WHERE tenant_id = ${tenant} AND account = ${account}`)
    )
    yield* each(
      yield* query(sql`SELECT tenant_id AS key, state AS value FROM subscription_state WHERE tenant_id = ${tenant} FOR UPDATE`, "subscription_state"),
      () => secretSlots.subscriptions,
      (_, value) => run(sql`UPDATE subscription_state SET state = ${sql.json(value)} WHERE tenant_id = ${tenant}`)
    )
    yield* each(
      yield* query(
        sql`SELECT id AS key, jsonb_build_object('certificates', jsonb_build_array(jsonb_build_object('id', id, 'privateKey', private_key_sealed))) AS value
          FROM certificates WHERE tenant_id = ${tenant} FOR UPDATE`,
        "certificates"
      ),
      () => secretSlots.certificates,
      (id, value) =>
        run(sql`UPDATE certificates SET private_key_sealed = ${(value as { certificates: ReadonlyArray<{ privateKey: string }> }).certificates[0]!.privateKey}
          WHERE tenant_id = ${tenant} AND id = ${id}`)
    )
    return { records, resealed }
  })

  return Effect.gen(function*() {
    const tenants = yield* sql`SELECT id AS tenant FROM tenants UNION SELECT tenant_id FROM refresh_tokens
      UNION SELECT tenant_id FROM subscription_state UNION SELECT tenant_id FROM certificates ORDER BY 1`.pipe(
      Effect.mapError(unavailable()),
      decodeRows(Schema.Struct({ tenant: TenantId }), "tenants")
    )
    let records = 0
    let resealed = 0
    for (const { tenant } of tenants) {
      const report = yield* sql.withTransaction(rekeyTenant(tenant)).pipe(
        Effect.mapError((error) => (error._tag === "SqlError" ? unavailable(tenant)(error) : error))
      )
      records += report.records
      resealed += report.resealed
    }
    yield* Effect.logInfo(`state rekey: ${resealed} secrets in ${records} records sealed with state key ${sealer.keyId}`)
    return { records, resealed }
  }).pipe(Effect.withSpan("StateStore.rekey"))
}
