/**
 * The desired command per PBX user and the tenant owners in PostgreSQL (docs/state.md, docs/scaling.md). Versions come
 * from one sequence, so they only grow; a put is refused unless it carries the owner's current epoch, checked under a
 * share lock on the owner row so a claim cannot slip between check and write. Each put, lease take and resend notifies
 * with the tenant and PBX, delivered on commit: a put on a leased PBX its holder's channel only (PgDesiredWakeups.ts).
 */
import type { PgClient } from "@effect/sql-pg"
import { Effect, Option, Schema } from "effect"
import { PbxPresenceCommand } from "../../domain/PbxPresence.ts"
import { fenced, latestPerUser, leaseLost } from "../memory/MemoryDesired.ts"
import { type Confirmation, type DesiredCommand, type HeldCommand, type PbxLease, type TenantId, type TenantOwner, type VersionedCommand } from "../Records.ts"
import type { StateStoreShape } from "../StateStoreShape.ts"
import { desiredChannel, heldChannel, heldChannelSql, notifyOf, pgDesiredWakeups } from "./PgDesiredWakeups.ts"
import { decodeRows, Int64, unavailable } from "./PgRows.ts"

const CommandRow = Schema.Struct({ guid: Schema.String, pbx: Schema.String, command: PbxPresenceCommand, version: Int64 })
const OwnerRow = Schema.Struct({ runner: Schema.String, epoch: Int64 })
/** The PBX's current lease epoch (null: never leased) with its pending rows, if the caller's epoch is the current one. */
const LeasedRow = Schema.Struct({
  lease: Schema.NullOr(Int64),
  guid: Schema.NullOr(Schema.String),
  pbx: Schema.NullOr(Schema.String),
  command: Schema.NullOr(PbxPresenceCommand),
  version: Schema.NullOr(Int64),
  waited: Schema.NullOr(Schema.Number)
})
/** A put's answer: the owner's epoch, with each row it wrote (none: a row of nulls) and its PBX's lease as it saw it. */
const PutRow = Schema.Struct({
  owner: Schema.NullOr(Int64),
  guid: Schema.NullOr(Schema.String),
  pbx: Schema.NullOr(Schema.String),
  command: Schema.NullOr(PbxPresenceCommand),
  version: Schema.NullOr(Int64),
  lease_runner: Schema.NullOr(Schema.String),
  lease_epoch: Schema.NullOr(Int64),
  unread: Schema.NullOr(Int64)
})
/**
 * A put's NOTIFY carries the rows it wrote for the PBX when the PBX's socket is leased and they fit in this many bytes
 * of JSON (a NOTIFY's payload must stay under 8000 bytes): their holder hands them over without reading them.
 */
export const notifyRowsBytes = 6000

const encodeCommand = Schema.encodeSync(PbxPresenceCommand)

const toVersioned = (row: typeof CommandRow.Type): VersionedCommand => ({
  pbx: row.pbx,
  guid: row.guid,
  command: row.command,
  version: row.version
})

const notify = (sql: PgClient.PgClient, tenant: TenantId, pbx: string) => sql`SELECT ${notifyOf(sql, desiredChannel, tenant, pbx)}`

const pgOwners = (sql: PgClient.PgClient): StateStoreShape["owners"] => ({
  claim: Effect.fn("StateStore.owners.claim")(function*(tenant: TenantId, runner: string) {
    const rows = yield* sql`INSERT INTO tenant_owner (tenant_id, runner, epoch) VALUES (${tenant}, ${runner}, 1)
      ON CONFLICT (tenant_id) DO UPDATE SET runner = EXCLUDED.runner, epoch = tenant_owner.epoch + 1, since = now()
      RETURNING runner, epoch`.pipe(Effect.mapError(unavailable(tenant)), decodeRows(OwnerRow, "tenant_owner", tenant))
    return rows[0]! as TenantOwner
  }),
  get: Effect.fn("StateStore.owners.get")(function*(tenant: TenantId) {
    const rows = yield* sql`SELECT runner, epoch FROM tenant_owner WHERE tenant_id = ${tenant}`.pipe(
      Effect.mapError(unavailable(tenant)),
      decodeRows(OwnerRow, "tenant_owner", tenant)
    )
    return Option.fromNullishOr(rows[0] as TenantOwner | undefined)
  })
})

/** What the PBXs confirmed in its latest version: the rows whose version is the confirmed one. */
const pgConfirmed = (sql: PgClient.PgClient) =>
  Effect.fn("StateStore.desired.confirmed")(function*(tenant: TenantId) {
    const rows = yield* sql`SELECT guid, pbx, command, version FROM pbx_desired
      WHERE tenant_id = ${tenant} AND version = confirmed_version`.pipe(
      Effect.mapError(unavailable(tenant)),
      decodeRows(CommandRow, "pbx_desired", tenant)
    )
    return rows.map(toVersioned)
  })

const HeldRow = Schema.Struct({ ...CommandRow.fields, holder: Schema.NullOr(Schema.String) })

/** Each user's latest row (by the primary key) with its PBX's lease holder: one statement for a batch of re-sends. */
const pgLatest = (sql: PgClient.PgClient) =>
  Effect.fn("StateStore.desired.latest")(function*(tenant: TenantId, guids: ReadonlyArray<string>) {
    if (guids.length === 0) return []
    const rows = yield* sql`SELECT d.guid, d.pbx, d.command, d.version, l.runner AS holder
      FROM pbx_desired AS d LEFT JOIN pbx_lease AS l ON l.tenant_id = d.tenant_id AND l.pbx = d.pbx
      WHERE d.tenant_id = ${tenant} AND d.guid IN (SELECT jsonb_array_elements_text(${sql.json([...new Set(guids)])}))`.pipe(
      Effect.mapError(unavailable(tenant)),
      decodeRows(HeldRow, "pbx_desired", tenant)
    )
    return rows.map((row): HeldCommand => ({ ...toVersioned(row), holder: row.holder ?? undefined }))
  })

/**
 * The PBX socket leases: a take bumps the epoch (and wakes the PBX's senders on commit); a leased read or confirmation
 * checks the caller's epoch against the lease row in the same statement.
 */
const pgLeases = (sql: PgClient.PgClient) => {
  const lease = Effect.fn("StateStore.desired.lease")(function*(tenant: TenantId, pbx: string, runner: string) {
    return yield* sql.withTransaction(Effect.gen(function*() {
      const rows = yield* sql`INSERT INTO pbx_lease (tenant_id, pbx, runner, epoch) VALUES (${tenant}, ${pbx}, ${runner}, 1)
        ON CONFLICT (tenant_id, pbx) DO UPDATE SET runner = EXCLUDED.runner, epoch = pbx_lease.epoch + 1, since = now()
        RETURNING runner, epoch`.pipe(Effect.mapError(unavailable(tenant)), decodeRows(OwnerRow, "pbx_lease", tenant))
      yield* notify(sql, tenant, pbx).pipe(Effect.mapError(unavailable(tenant)))
      return { pbx, runner: rows[0]!.runner, epoch: rows[0]!.epoch } satisfies PbxLease
    })).pipe(Effect.mapError((error) => (error._tag === "SqlError" ? unavailable(tenant)(error) : error)))
  })

  const leasedPending = Effect.fnUntraced(function*(tenant: TenantId, pbx: string, limit: number, epoch: number, after: number) {
    const rows = yield* sql`SELECT l.epoch AS lease, d.guid, d.pbx, d.command, d.version, d.waited
      FROM pbx_lease AS l LEFT JOIN LATERAL (
        SELECT guid, pbx, command, version, (extract(epoch FROM clock_timestamp() - updated_at) * 1000)::float8 AS waited
        FROM pbx_desired
        WHERE tenant_id = l.tenant_id AND pbx = l.pbx AND version > confirmed_version AND version > ${after}
          AND l.epoch = ${epoch}
        ORDER BY version LIMIT ${limit}
      ) AS d ON true
      WHERE l.tenant_id = ${tenant} AND l.pbx = ${pbx}
      ORDER BY d.version`.pipe(Effect.mapError(unavailable(tenant)), decodeRows(LeasedRow, "pbx_desired", tenant))
    const current = rows[0]?.lease ?? 0
    if (current !== epoch) return yield* leaseLost(tenant, pbx, epoch, current)
    return rows.flatMap((row) =>
      row.guid === null || row.pbx === null || row.command === null || row.version === null
        ? []
        : [{ pbx: row.pbx, guid: row.guid, command: row.command, version: row.version, ...(row.waited === null ? {} : { waited: row.waited }) } satisfies VersionedCommand]
    )
  })

  const leasedConfirm = Effect.fnUntraced(
    function*(tenant: TenantId, rows: ReadonlyArray<Confirmation>, { epoch, pbx }: Pick<PbxLease, "pbx" | "epoch">) {
      const result = yield* sql`WITH l AS (SELECT epoch FROM pbx_lease WHERE tenant_id = ${tenant} AND pbx = ${pbx}),
        u AS (UPDATE pbx_desired AS d SET confirmed_version = r.version
          FROM jsonb_to_recordset(${sql.json(rows)}) AS r(guid text, version bigint)
          WHERE d.tenant_id = ${tenant} AND d.pbx = ${pbx} AND d.guid = r.guid AND d.confirmed_version < r.version
            AND r.version <= d.version AND EXISTS (SELECT 1 FROM l WHERE l.epoch = ${epoch})
          RETURNING 1)
        SELECT (SELECT epoch FROM l) AS lease, (SELECT count(*) FROM u) AS confirmed`.pipe(
        Effect.mapError(unavailable(tenant)),
        decodeRows(Schema.Struct({ lease: Schema.NullOr(Int64), confirmed: Int64 }), "pbx_lease", tenant)
      )
      const current = result[0]?.lease ?? 0
      if (current !== epoch) return yield* leaseLost(tenant, pbx, epoch, current)
    }
  )
  return { lease, leasedPending, leasedConfirm }
}

/** The rows a put wrote (a put that wrote none answers one row of nulls), each with its PBX's lease, by version. */
const changedRows = (result: ReadonlyArray<typeof PutRow.Type>): Array<VersionedCommand> =>
  result.flatMap((row) =>
    row.guid === null || row.pbx === null || row.command === null || row.version === null
      ? []
      : [{
        pbx: row.pbx,
        guid: row.guid,
        command: row.command,
        version: row.version,
        ...(row.lease_runner === null || row.lease_epoch === null ? {} : { lease: { runner: row.lease_runner, epoch: row.lease_epoch, unread: row.unread ?? 0 } })
      } satisfies VersionedCommand]
  ).sort((a, b) => a.version - b.version)

/** A put's NOTIFY channel per PBX: its holder's, or every runner's when nobody holds it (PgDesiredWakeups.ts). */
const heldOrAll = `CASE WHEN h.lease_runner IS NULL THEN '${desiredChannel}' ELSE ${heldChannelSql("h.lease_runner")} END`

export const makePgDesired = (sql: PgClient.PgClient) => {
  /**
   * One statement, one round trip on any pooled connection: the owner row is read under a share lock (a claim waits for
   * this statement's end, so it cannot slip between the check and the write), the rows are written only when the epoch
   * is current, and each PBX whose rows changed is notified on commit. Each written row carries its PBX's socket lease
   * and the highest version of the PBX's other pending rows, both as they were before the statement (its snapshot): the
   * lease's holder can hand the rows to its writer without reading them when it has read that far — the owner's own
   * runner from this answer, any other runner from the NOTIFY, which carries the same rows and lease (`notifyRowsBytes`).
   * The NOTIFY goes to the holder's channel only: the lease rows are read under a share lock (a take waits for this
   * statement's end and then reads these rows; a take committed first is the lease seen), so no take is missed; a PBX
   * nobody holds is notified to every runner, whoever takes its lease next reads everything.
   */
  const put = Effect.fn("StateStore.desired.put")(function*(tenant: TenantId, epoch: number, commands: ReadonlyArray<DesiredCommand>) {
    const rows = latestPerUser(commands).map((c) => ({ guid: c.guid, pbx: c.pbx, command: encodeCommand(c.command) }))
    const result = yield* sql`WITH o AS (SELECT epoch, runner FROM tenant_owner WHERE tenant_id = ${tenant} FOR SHARE),
      w AS (
        INSERT INTO pbx_desired (tenant_id, guid, pbx, command, version, owner_epoch)
        SELECT ${tenant}, r.guid, r.pbx, r.command, nextval('pbx_desired_version'), ${epoch}
        FROM jsonb_to_recordset(${sql.json(rows)}) AS r(guid text, pbx text, command jsonb)
        WHERE EXISTS (SELECT 1 FROM o WHERE o.epoch = ${epoch})
        ON CONFLICT (tenant_id, guid) DO UPDATE SET pbx = EXCLUDED.pbx, command = EXCLUDED.command,
          version = EXCLUDED.version, owner_epoch = EXCLUDED.owner_epoch, updated_at = now()
          WHERE pbx_desired.pbx <> EXCLUDED.pbx OR pbx_desired.command <> EXCLUDED.command
        RETURNING guid, pbx, command, version),
      l AS MATERIALIZED (SELECT pbx, runner, epoch FROM pbx_lease
        WHERE tenant_id = ${tenant} AND pbx IN (SELECT pbx FROM w) FOR SHARE),
      h AS (SELECT p.pbx, l.runner AS lease_runner, l.epoch AS lease_epoch,
          coalesce((SELECT max(d.version) FROM pbx_desired AS d
            WHERE d.tenant_id = ${tenant} AND d.pbx = p.pbx AND d.version > d.confirmed_version
              AND d.guid NOT IN (SELECT guid FROM w)), 0) AS unread
        FROM (SELECT DISTINCT pbx FROM w) AS p LEFT JOIN l ON l.pbx = p.pbx),
      n AS (SELECT ${notifyOf(sql, sql.literal(heldOrAll), tenant, sql.literal("p.pbx"), sql.literal(`, 'version', p.version, 'by', (SELECT runner FROM o),
          'holder', h.lease_runner, 'lease', h.lease_epoch, 'unread', h.unread,
          'rows', CASE WHEN h.lease_runner IS NOT NULL AND octet_length(p.rows::text) <= ${notifyRowsBytes} THEN p.rows END`))}
        FROM (SELECT pbx, max(version) AS version,
            json_agg(json_build_object('guid', guid, 'command', command, 'version', version) ORDER BY version) AS rows
          FROM w GROUP BY pbx) AS p JOIN h ON h.pbx = p.pbx)
      SELECT (SELECT epoch FROM o) AS owner, (SELECT count(*) FROM n) AS notified, w.guid, w.pbx, w.command, w.version,
        h.lease_runner, h.lease_epoch, h.unread
      FROM (SELECT 1) AS one LEFT JOIN w ON true LEFT JOIN h ON h.pbx = w.pbx`.pipe(Effect.mapError(unavailable(tenant)), decodeRows(PutRow, "pbx_desired", tenant))
    const current = result[0]?.owner ?? 0
    if (current !== epoch) return yield* fenced(tenant, epoch, current)
    return changedRows(result)
  })

  const pending = Effect.fn("StateStore.desired.pending")(function*(tenant: TenantId, pbx: string, limit = 1000, lease?: number, after = 0) {
    if (lease !== undefined) return yield* leasedPending(tenant, pbx, limit, lease, after)
    const rows = yield* sql`SELECT guid, pbx, command, version FROM pbx_desired
      WHERE tenant_id = ${tenant} AND pbx = ${pbx} AND version > confirmed_version AND version > ${after}
      ORDER BY version LIMIT ${limit}`.pipe(Effect.mapError(unavailable(tenant)), decodeRows(CommandRow, "pbx_desired", tenant))
    return rows.map(toVersioned)
  })

  const confirm = Effect.fn("StateStore.desired.confirm")(
    function*(tenant: TenantId, confirmations: ReadonlyArray<Confirmation>, lease?: Pick<PbxLease, "pbx" | "epoch">) {
      const highest = new Map<string, number>()
      for (const c of confirmations) highest.set(c.guid, Math.max(c.version, highest.get(c.guid) ?? 0))
      if (highest.size === 0) return
      const rows = [...highest].map(([guid, version]) => ({ guid, version }))
      if (lease !== undefined) return yield* leasedConfirm(tenant, rows, lease)
      yield* sql`UPDATE pbx_desired AS d SET confirmed_version = r.version
        FROM jsonb_to_recordset(${sql.json(rows)}) AS r(guid text, version bigint)
        WHERE d.tenant_id = ${tenant} AND d.guid = r.guid AND d.confirmed_version < r.version AND r.version <= d.version`.pipe(
        Effect.mapError(unavailable(tenant))
      )
    }
  )

  const resend = Effect.fn("StateStore.desired.resend")(function*(tenant: TenantId, pbx: string) {
    yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`UPDATE pbx_desired SET confirmed_version = 0 WHERE tenant_id = ${tenant} AND pbx = ${pbx}`
      yield* notify(sql, tenant, pbx)
    })).pipe(Effect.mapError(unavailable(tenant)))
  })

  const { lease, leasedConfirm, leasedPending } = pgLeases(sql)
  const desired: StateStoreShape["desired"] = { put, pending, confirm, confirmed: pgConfirmed(sql), latest: pgLatest(sql), resend, lease,
    wakeups: pgDesiredWakeups(sql, desiredChannel), heldWakeups: (runner) => pgDesiredWakeups(sql, heldChannel(runner)) }
  return { desired, owners: pgOwners(sql) }
}
