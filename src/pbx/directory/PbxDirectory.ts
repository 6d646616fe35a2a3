/**
 * The master PBX's user directory, replicated over PbxTableUsers (protocols.md §2.3) as a read-only consumer:
 * `ReplicateStart`, `ReplicateNext` until the initial load is done, then live Add / Update / Del. Only people are kept:
 * a row of another object type (waiting queue, trunk, gateway, …) never enters the directory, whatever e-mail address
 * it carries. Exposed as a snapshot and a stream of changes; a reconnect of the master reloads the table and
 * announces it as a reset.
 */
import { Context, Deferred, Effect, Layer, Option, PubSub, Schema, Stream } from "effect"
import { clip } from "../../domain/LogText.ts"
import type { PbxConnection } from "../socket/PbxConnection.ts"
import { PbxConnections } from "../socket/PbxConnections.ts"
import {
  isUserObject,
  pseudoType,
  ReplicateDel,
  ReplicateNextResult,
  ReplicateRow,
  replicateStart,
  type UserRow
} from "../socket/PbxMessages.ts"
import { PbxSettings, type PbxSettingsOptions } from "../PbxSettings.ts"

export interface PbxUser {
  readonly guid: string
  /** The user name (SIP). */
  readonly h323: string
  readonly cn: string
  readonly dn: string
  readonly e164: string
  readonly emails: ReadonlyArray<string>
  readonly h323Email?: boolean
  /** The PBX the user is registered at. */
  readonly loc: string
  readonly node: string
  /** Apps the user has rights to. */
  readonly apps: ReadonlyArray<string>
  readonly hide: boolean
  /** The groups the user is a member of (`grps`), for pbxToTeams.group. */
  readonly groups?: ReadonlyArray<string> | undefined
}

export type DirectoryChange =
  | { readonly _tag: "Added"; readonly user: PbxUser }
  | { readonly _tag: "Updated"; readonly user: PbxUser; readonly previous: PbxUser }
  | { readonly _tag: "Removed"; readonly user: PbxUser }
  | { readonly _tag: "Reset"; readonly users: ReadonlyMap<string, PbxUser> }

/** The `apps` column is a comma separated string on a real PBX; a list is accepted too. */
const parseApps = (apps: UserRow["apps"]): ReadonlyArray<string> => {
  if (apps === undefined) return []
  const items = typeof apps === "string"
    ? apps.split(/[,\s]+/)
    : apps.map((item) =>
      typeof item === "string"
        ? item
        : item !== null && typeof item === "object" && "name" in item && typeof item.name === "string"
        ? item.name
        : ""
    )
  return items.map((item) => item.trim()).filter((item) => item.length > 0)
}

/**
 * Values most users share (their PBX, node, apps and groups), kept once: each row arrives in a message of its own, so
 * without this every user held copies of the same strings and lists (≈ 300 bytes each, bench/userCost.ts). Bounded,
 * so a table of all-different values cannot grow it without end; beyond the bound values are simply not shared.
 */
const shared = new Map<string, string | ReadonlyArray<string>>()
const sharedLimit = 4_096
const noItems: ReadonlyArray<string> = Object.freeze([])
const sharedString = (value: string): string => {
  const known = shared.get(`s:${value}`)
  if (typeof known === "string") return known
  if (shared.size < sharedLimit) shared.set(`s:${value}`, value)
  return value
}
const sharedList = (items: ReadonlyArray<string>): ReadonlyArray<string> => {
  if (items.length === 0) return noItems
  const key = `l:${items.join("\u0000")}`
  const known = shared.get(key)
  if (known !== undefined && typeof known !== "string") return known
  const list = Object.freeze(items.map(sharedString))
  if (shared.size < sharedLimit) shared.set(key, list)
  return list
}

export const userFromRow = (row: UserRow): PbxUser => ({
  guid: row.guid,
  h323: row.h323 ?? "",
  cn: row.cn ?? "",
  dn: row.dn ?? "",
  e164: row.e164 ?? "",
  emails: (row.emails ?? []).map((entry) => entry.email),
  ...(row["h323-email"] !== undefined ? { h323Email: row["h323-email"] } : {}),
  loc: sharedString(row.loc ?? ""),
  node: sharedString(row.node ?? ""),
  apps: sharedList(parseApps(row.apps)),
  hide: row.hide ?? false,
  ...(row.grps !== undefined ? { groups: sharedList(parseApps(row.grps)) } : {})
})

const decodeNext = Schema.decodeUnknownResult(ReplicateNextResult)
const decodeRow = Schema.decodeUnknownResult(ReplicateRow)
const decodeDel = Schema.decodeUnknownResult(ReplicateDel)

/** Decodes a live replication message into a directory edit; undefined (with the reason) when it is malformed. */
export const decodeReplicateMessage = (
  message: unknown
):
  | { readonly _tag: "Upsert"; readonly user: PbxUser }
  | { readonly _tag: "Delete"; readonly guid: string }
  | { readonly _tag: "NotAUser"; readonly guid: string; readonly type: string }
  | { readonly _tag: "Invalid"; readonly reason: string } =>
{
  const row = decodeRow(message)
  if (row._tag === "Success") {
    const columns = row.success.columns
    return isUserObject(columns)
      ? { _tag: "Upsert", user: userFromRow(columns) }
      : { _tag: "NotAUser", guid: columns.guid, type: pseudoType(columns.pseudo) }
  }
  const del = decodeDel(message)
  if (del._tag === "Success") {
    const guid = del.success.columns?.guid ?? del.success.guid
    if (guid !== undefined) return { _tag: "Delete", guid }
    return { _tag: "Invalid", reason: "ReplicateDel without a guid" }
  }
  return { _tag: "Invalid", reason: row.failure.message }
}

export class PbxDirectory extends Context.Service<PbxDirectory, {
  readonly snapshot: Effect.Effect<ReadonlyMap<string, PbxUser>>
  readonly changes: Stream.Stream<DirectoryChange>
  /** Completes when the first initial load from the master is done. */
  readonly ready: Effect.Effect<void>
  readonly get: (guid: string) => Effect.Effect<Option.Option<PbxUser>>
}>()("teams-presence-connector/pbx/directory/PbxDirectory") {
  static readonly layer = Layer.effect(
    PbxDirectory,
    Effect.gen(function*() {
      const connections = yield* PbxConnections
      const table: Table = {
        settings: yield* PbxSettings,
        users: new Map(),
        changes: yield* PubSub.unbounded<DirectoryChange>(),
        ready: yield* Deferred.make<void>()
      }
      // Subscribed before the current master is looked at, so that no login falls between.
      const events = yield* connections.subscribe
      const current = yield* connections.master
      if (Option.isSome(current)) yield* Effect.forkScoped(follow(table, current.value))
      yield* Effect.forkScoped(Effect.forever(Effect.flatMap(PubSub.take(events), (event) =>
        event._tag === "Up" && event.connection.isMaster ? Effect.asVoid(Effect.forkScoped(follow(table, event.connection))) : Effect.void
      )))
      return PbxDirectory.of({
        snapshot: Effect.sync(() => table.users),
        changes: Stream.fromPubSub(table.changes),
        ready: Deferred.await(table.ready),
        get: (guid) => Effect.sync(() => Option.fromNullishOr(table.users.get(guid)))
      })
    })
  )
}

/** The directory's state: the users (replaced as a whole on every edit, so a snapshot never changes), its changes. */
interface Table {
  readonly settings: PbxSettingsOptions
  users: ReadonlyMap<string, PbxUser>
  readonly changes: PubSub.PubSub<DirectoryChange>
  /** Completed when the first initial load from the master is done. */
  readonly ready: Deferred.Deferred<void>
}

/** A live replication message applied: a person added or updated, or removed (also when no longer a person). */
const apply = Effect.fnUntraced(function*(table: Table, pbx: string, message: unknown) {
  const edit = decodeReplicateMessage(message)
  if (edit._tag === "Invalid") {
    return yield* Effect.logWarning(`PBX ${pbx}: ignored a malformed user table message: ${clip(edit.reason, 300)}`)
  }
  const next = new Map(table.users)
  if (edit._tag === "Delete" || edit._tag === "NotAUser") {
    // An object that is (now) not a person leaves the directory like a deleted one.
    const previous = table.users.get(edit.guid)
    if (previous === undefined) return
    next.delete(edit.guid)
    table.users = next
    return yield* PubSub.publish(table.changes, { _tag: "Removed", user: previous })
  }
  const previous = table.users.get(edit.user.guid)
  table.users = next.set(edit.user.guid, edit.user)
  yield* PubSub.publish(
    table.changes,
    previous === undefined ? { _tag: "Added", user: edit.user } : { _tag: "Updated", user: edit.user, previous }
  )
})

/** The initial load: ReplicateStart, then ReplicateNext until the table is done; people kept, other objects counted. */
const load = Effect.fn("PbxDirectory.load")(function*(connection: PbxConnection) {
  yield* connection.request(replicateStart)
  const loaded = new Map<string, PbxUser>()
  const others = new Map<string, number>()
  while (true) {
    const result = decodeNext(yield* connection.request({ api: "PbxTableUsers", mt: "ReplicateNext" }))
    if (result._tag === "Failure") {
      yield* Effect.logWarning(`PBX ${connection.pbx}: ignored a malformed ReplicateNextResult: ${clip(result.failure.message, 300)}`)
      continue
    }
    const row = result.success.columns
    if (row === undefined) break
    if (isUserObject(row)) loaded.set(row.guid, userFromRow(row))
    else others.set(pseudoType(row.pseudo), (others.get(pseudoType(row.pseudo)) ?? 0) + 1)
  }
  return { loaded, ignored: [...others].map(([type, count]) => `${count} ${type}`).join(", ") }
})

/** The replication over one master connection: the initial load (announced as a reset), then the live edits. */
const replicate = Effect.fn("PbxDirectory.replicate")(function*(table: Table, connection: PbxConnection) {
  const info = yield* Deferred.await(connection.pbxInfo).pipe(Effect.timeoutOption(table.settings.requestTimeoutMs))
  if (Option.isSome(info) && !(info.value.apis ?? []).includes("PbxTableUsers")) {
    return yield* Effect.logError(`PBX ${connection.pbx}: cannot read the user table; set the checkmark PbxTableUsers on the App object`)
  }
  const pushes = yield* PubSub.subscribe(connection.indications)
  const { loaded, ignored } = yield* load(connection)
  table.users = loaded
  yield* PubSub.publish(table.changes, { _tag: "Reset", users: loaded })
  yield* Deferred.succeed(table.ready, undefined)
  yield* Effect.logInfo(
    `PBX ${connection.pbx}: user table loaded, ${loaded.size} users${ignored === "" ? "" : ` (objects that are not users, left out: ${ignored})`}`
  )
  while (true) {
    const { envelope, message } = yield* PubSub.take(pushes)
    if (envelope.api === "PbxTableUsers") yield* apply(table, connection.pbx, message)
  }
}, Effect.scoped)

/** Follows one master connection until it closes; a failed request stops the replication with a log line. */
const follow = (table: Table, connection: PbxConnection) =>
  Effect.raceFirst(
    replicate(table, connection).pipe(
      Effect.catchTag("PbxRequestError", (error) => Effect.logError(`User table replication stopped: ${clip(error.message, 300)}`))
    ),
    Deferred.await(connection.closed)
  )
