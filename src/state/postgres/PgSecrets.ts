/**
 * A tenant's refresh tokens, subscription state, notification certificates and presence sessions in PostgreSQL. Each goes through the
 * same record codecs as the files, sealed without exception: the refresh token and private key columns, and the
 * clientStates inside the subscription state, hold sealed text only.
 */
import type { PgClient } from "@effect/sql-pg"
import { Effect, Option, Schema } from "effect"
import type { CertificateSet, RefreshToken, TenantId } from "../Records.ts"
import type { Sealer } from "../Sealer.ts"
import { codecs, decodeOpened, encodeSealed, type RecordCodec } from "../Sealing.ts"
import type { StateStoreShape } from "../StateStoreShape.ts"
import { decodeRows, Int64, unavailable } from "./PgRows.ts"

const TokenRow = Schema.Struct({ username: Schema.String, refresh_token_sealed: Schema.String })
const StateRow = Schema.Struct({ state: Schema.Unknown })
const CertificateRow = Schema.Struct({
  id: Schema.String,
  is_current: Schema.Boolean,
  certificate: Schema.String,
  private_key_sealed: Schema.String,
  thumbprint: Schema.String,
  created_at: Int64,
  not_after: Int64
})

/** The stored form of a certificate set (as in the files) from its rows; None when there are none. */
const certificateSetOf = (rows: ReadonlyArray<typeof CertificateRow.Type>): Option.Option<unknown> =>
  rows.length === 0 ? Option.none() : Option.some({
    currentId: (rows.find((r) => r.is_current) ?? rows[0]!).id,
    certificates: rows.map((r) => ({
      id: r.id,
      certificate: r.certificate,
      privateKey: r.private_key_sealed,
      thumbprint: r.thumbprint,
      createdAt: r.created_at,
      notAfter: r.not_after
    }))
  })

interface StoredCertificateSet {
  readonly currentId: string
  readonly certificates: ReadonlyArray<{
    readonly id: string
    readonly certificate: string
    readonly privateKey: string
    readonly thumbprint: string
    readonly createdAt: number
    readonly notAfter: number
  }>
}

const pgRefreshTokens = (sql: PgClient.PgClient, sealer: Sealer["Service"]): StateStoreShape["refreshTokens"] => ({
  get: Effect.fn("StateStore.refreshTokens.get")(function*(tenant: TenantId, account: string) {
    const rows = yield* sql`SELECT username, refresh_token_sealed FROM refresh_tokens
      WHERE tenant_id = ${tenant} AND account = ${account}`.pipe(Effect.mapError(unavailable(tenant)), decodeRows(TokenRow, "refresh_tokens", tenant))
    const row = rows[0]
    if (row === undefined) return Option.none<RefreshToken>()
    const stored = { username: row.username, refreshToken: row.refresh_token_sealed }
    return Option.some(yield* decodeOpened(sealer, tenant, codecs.refreshToken(account), stored, `refresh_tokens row ${account}`, "always"))
  }),
  put: Effect.fn("StateStore.refreshTokens.put")(function*(tenant: TenantId, account: string, token: RefreshToken) {
    const stored = (yield* encodeSealed(sealer, tenant, codecs.refreshToken(account), token, "always")) as { username: string; refreshToken: string }
    yield* sql`INSERT INTO refresh_tokens (tenant_id, account, username, refresh_token_sealed)
      VALUES (${tenant}, ${account}, ${stored.username}, ${stored.refreshToken})
      ON CONFLICT (tenant_id, account) DO UPDATE SET username = EXCLUDED.username,
        refresh_token_sealed = EXCLUDED.refresh_token_sealed, updated_at = now()`.pipe(Effect.mapError(unavailable(tenant)))
  }),
  remove: Effect.fn("StateStore.refreshTokens.remove")(function*(tenant: TenantId, account: string) {
    yield* sql`DELETE FROM refresh_tokens WHERE tenant_id = ${tenant} AND account = ${account}`.pipe(Effect.mapError(unavailable(tenant)))
  }),
  accounts: Effect.fn("StateStore.refreshTokens.accounts")(function*(tenant: TenantId) {
    const rows = yield* sql`SELECT account FROM refresh_tokens WHERE tenant_id = ${tenant} ORDER BY account`.pipe(
      Effect.mapError(unavailable(tenant)),
      decodeRows(Schema.Struct({ account: Schema.String }), "refresh_tokens", tenant)
    )
    return rows.map((r) => r.account)
  })
})

/** A record kept whole in one JSON `state` column, one row per tenant: the subscription state, the presence sessions. */
const pgStateRecord = <T>(
  sql: PgClient.PgClient,
  sealer: Sealer["Service"],
  part: "subscriptions" | "presenceSessions",
  table: "subscription_state" | "presence_sessions",
  record: RecordCodec<T>
) => ({
  load: Effect.fn(`StateStore.${part}.load`)(function*(tenant: TenantId) {
    const rows = yield* sql`SELECT state FROM ${sql(table)} WHERE tenant_id = ${tenant}`.pipe(
      Effect.mapError(unavailable(tenant)),
      decodeRows(StateRow, table, tenant)
    )
    if (rows[0] === undefined) return Option.none<T>()
    return Option.some(yield* decodeOpened(sealer, tenant, record, rows[0].state, `${table} row`, "always"))
  }),
  save: Effect.fn(`StateStore.${part}.save`)(function*(tenant: TenantId, value: T) {
    const stored = yield* encodeSealed(sealer, tenant, record, value, "always")
    yield* sql`INSERT INTO ${sql(table)} (tenant_id, state) VALUES (${tenant}, ${sql.json(stored)})
      ON CONFLICT (tenant_id) DO UPDATE SET state = EXCLUDED.state, updated_at = now()`.pipe(Effect.mapError(unavailable(tenant)))
  })
})

const pgCertificates = (sql: PgClient.PgClient, sealer: Sealer["Service"]): StateStoreShape["certificates"] => ({
  load: Effect.fn("StateStore.certificates.load")(function*(tenant: TenantId) {
    const rows = yield* sql`SELECT id, is_current, certificate, private_key_sealed, thumbprint, created_at, not_after
      FROM certificates WHERE tenant_id = ${tenant} ORDER BY position`.pipe(
      Effect.mapError(unavailable(tenant)),
      decodeRows(CertificateRow, "certificates", tenant)
    )
    const stored = certificateSetOf(rows)
    if (Option.isNone(stored)) return Option.none<CertificateSet>()
    return Option.some(yield* decodeOpened(sealer, tenant, codecs.certificates, stored.value, "certificates rows", "always"))
  }),
  save: Effect.fn("StateStore.certificates.save")(function*(tenant: TenantId, set: CertificateSet) {
    const stored = (yield* encodeSealed(sealer, tenant, codecs.certificates, set, "always")) as StoredCertificateSet
    yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`DELETE FROM certificates WHERE tenant_id = ${tenant}`
      yield* Effect.forEach(stored.certificates, (c, position) =>
        sql`INSERT INTO certificates ${
          sql.insert({
            tenant_id: tenant,
            id: c.id,
            position,
            is_current: c.id === stored.currentId,
            certificate: c.certificate,
            private_key_sealed: c.privateKey,
            thumbprint: c.thumbprint,
            created_at: BigInt(c.createdAt),
            not_after: BigInt(c.notAfter)
          })
        }`, { discard: true })
    })).pipe(Effect.mapError(unavailable(tenant)))
  })
})

export const makePgSecrets = (
  sql: PgClient.PgClient,
  sealer: Sealer["Service"]
): Pick<StateStoreShape, "refreshTokens" | "subscriptions" | "certificates" | "presenceSessions"> => ({
  refreshTokens: pgRefreshTokens(sql, sealer),
  subscriptions: pgStateRecord(sql, sealer, "subscriptions", "subscription_state", codecs.subscriptions),
  certificates: pgCertificates(sql, sealer),
  presenceSessions: pgStateRecord(sql, sealer, "presenceSessions", "presence_sessions", codecs.presenceSessions)
})
