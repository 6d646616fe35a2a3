/**
 * The desired commands' wake-ups in PostgreSQL (docs/scaling.md, "A put's NOTIFY to its PBX's holder"): a lease take, a
 * resend and a put on a PBX nobody holds notify `connector_pbx_desired`, which every runner LISTENs on; a put on a
 * leased PBX notifies its holder's channel only, so the runners that do not hold its socket are not woken for it.
 */
import { createHash } from "node:crypto"
import type { PgClient } from "@effect/sql-pg"
import { Clock, Effect, Queue, Schema, Stream } from "effect"
import type { Statement } from "effect/sql"
import { PbxPresenceCommand } from "../../domain/PbxPresence.ts"
import { TenantId, type VersionedCommand } from "../Records.ts"
import type { DesiredWakeup } from "../StateStoreShape.ts"
import { listenForever } from "./PgListen.ts"

export const desiredChannel = "connector_pbx_desired"

/**
 * The channel of the puts on the PBXs whose socket `runner` holds: a digest, as a runner's name (its address) has no
 * bound and a channel's must stay within 63 bytes. The put names it in SQL (`heldChannelSql`) from the lease it locked.
 */
export const heldChannel = (runner: string): string => `${desiredChannel}_${createHash("md5").update(runner).digest("hex")}`
export const heldChannelSql = (runnerColumn: string) => `'${desiredChannel}_' || md5(${runnerColumn})`

const Wakeup = Schema.fromJsonString(Schema.Struct({
  tenant: TenantId,
  pbx: Schema.String,
  at: Schema.optional(Schema.Number),
  version: Schema.optional(Schema.Number),
  by: Schema.optional(Schema.String),
  holder: Schema.optional(Schema.NullOr(Schema.String)),
  lease: Schema.optional(Schema.NullOr(Schema.Number)),
  unread: Schema.optional(Schema.NullOr(Schema.Number)),
  rows: Schema.optional(Schema.NullOr(Schema.Array(Schema.Struct({ guid: Schema.String, command: PbxPresenceCommand, version: Schema.Number }))))
}))

/** The rows a put's NOTIFY carries (none: `{}`), each with the PBX's lease as the put saw it (DesiredHandover.ts `handPut`). */
const putOf = ({ holder, lease, pbx, rows, unread }: typeof Wakeup.Type): { readonly put?: ReadonlyArray<VersionedCommand> } =>
  rows === undefined || rows === null || holder === undefined || holder === null || lease === undefined || lease === null
    ? {}
    : { put: rows.map((row) => ({ pbx, guid: row.guid, command: row.command, version: row.version, lease: { runner: holder, epoch: lease, unread: unread ?? 0 } })) }

/**
 * The NOTIFY of `pbx`'s news (a value or a column) on `channel`: its tenant, its PBX, when it was sent by the database's
 * clock and, from a put, the highest version it wrote for the PBX, the owner that put it, the PBX's lease as the put saw
 * it and, when the PBX is leased, the rows themselves with the highest version of the PBX's other pending rows (columns:
 * `version`, `by`, `holder`, `lease`, `unread`, `rows`).
 */
export const notifyOf = (
  sql: PgClient.PgClient,
  channel: string | Statement.Fragment,
  tenant: TenantId,
  pbx: string | Statement.Fragment,
  put?: Statement.Fragment
) =>
  sql`pg_notify(${channel}, json_build_object('tenant', ${tenant}::text, 'pbx', ${pbx}::text,
    'at', (extract(epoch FROM clock_timestamp()) * 1000)::float8${put === undefined ? sql.literal("") : put})::text)`

/** Wake-ups from one LISTEN on `channel` per subscriber; `resync` after every (re)LISTEN. Bounded: the oldest are dropped. */
export const pgDesiredWakeups = (sql: PgClient.PgClient, channel: string): Stream.Stream<DesiredWakeup> => Stream.unwrap(Effect.gen(function*() {
  const queue = yield* Queue.sliding<DesiredWakeup>(4096)
  const onNotify = (payload: string) =>
    Schema.decodeUnknownEffect(Wakeup)(payload).pipe(
      Effect.flatMap((w) =>
        Effect.flatMap(Clock.currentTimeMillis, (receivedAt) =>
          Queue.offer(queue, {
            kind: "changed",
            tenant: w.tenant,
            pbx: w.pbx,
            ...(w.at === undefined ? {} : { at: w.at, receivedAt }),
            ...(w.version === undefined ? {} : { version: w.version }),
            ...(w.by === undefined ? {} : { by: { owner: w.by, holder: w.holder ?? undefined, lease: w.lease ?? undefined } }),
            ...putOf(w)
          }))
      ),
      Effect.catch(() => Effect.logWarning(`state store: ignoring a ${desiredChannel} notification that is not {tenant, pbx}`)),
      Effect.asVoid
    )
  yield* listenForever(sql, channel, onNotify, Queue.offer(queue, { kind: "resync" }).pipe(Effect.asVoid))
  return Stream.fromQueue(queue)
}))
