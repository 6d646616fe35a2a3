/**
 * The master PBX's user directory, replicated over PbxTableUsers (protocols.md §2.3) as a read-only consumer:
 * `ReplicateStart`, `ReplicateNext` until the initial load is done, then live Add / Update / Del. Only people are kept:
 * a row of another object type (waiting queue, trunk, gateway, …) never enters the directory, whatever e-mail address
 * it carries. Exposed as a snapshot and a stream of changes; a reconnect of the master reloads the table and
 * announces it as a reset.
 */
import { Context, Deferred, Duration, Effect, Layer, Option, PubSub, Schema, Stream } from "effect"
import { clip } from "../../domain/LogText.ts"
import type { PbxConnection, PbxRequestError } from "../socket/PbxConnection.ts"
import { PbxConnections } from "../socket/PbxConnections.ts"
import { isUserObject, pseudoType, ReplicateDel, ReplicateRow } from "../socket/PbxMessages.ts"
import { PbxSettings, type PbxSettingsOptions } from "../PbxSettings.ts"
import { type PbxUser, userFromRow } from "./PbxUser.ts"
import { loadTable, replicationWindow } from "./ReplicationLoad.ts"

export { type PbxUser, userFromRow }

export type DirectoryChange =
  | { readonly _tag: "Added"; readonly user: PbxUser }
  | { readonly _tag: "Updated"; readonly user: PbxUser; readonly previous: PbxUser }
  | { readonly _tag: "Removed"; readonly user: PbxUser }
  | { readonly _tag: "Reset"; readonly users: ReadonlyMap<string, PbxUser> }

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
        shared: false,
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
        snapshot: Effect.sync(() => handOut(table)),
        changes: Stream.fromPubSub(table.changes),
        ready: Deferred.await(table.ready),
        get: (guid) => Effect.sync(() => Option.fromNullishOr(table.users.get(guid)))
      })
    })
  )
}

/**
 * The directory's state: the users and its changes. A snapshot handed out (or announced in a reset) never changes: the
 * next edit copies the map first. Edits between snapshots change it in place, so a burst of live rows is not a copy of
 * the whole table per row.
 */
interface Table {
  readonly settings: PbxSettingsOptions
  users: Map<string, PbxUser>
  /** Whether `users` has been handed out since the last copy. */
  shared: boolean
  readonly changes: PubSub.PubSub<DirectoryChange>
  /** Completed when the first initial load from the master is done. */
  readonly ready: Deferred.Deferred<void>
}

const handOut = (table: Table): ReadonlyMap<string, PbxUser> => {
  table.shared = true
  return table.users
}

/** The map to edit: `users` itself, or a copy when a snapshot of it is out. */
const editable = (table: Table): Map<string, PbxUser> => {
  if (table.shared) {
    table.users = new Map(table.users)
    table.shared = false
  }
  return table.users
}

/** A live replication message applied: a person added or updated, or removed (also when no longer a person). */
const apply = Effect.fnUntraced(function*(table: Table, pbx: string, message: unknown) {
  const edit = decodeReplicateMessage(message)
  if (edit._tag === "Invalid") {
    return yield* Effect.logWarning(`PBX ${pbx}: ignored a malformed user table message: ${clip(edit.reason, 300)}`)
  }
  if (edit._tag === "Delete" || edit._tag === "NotAUser") {
    // An object that is (now) not a person leaves the directory like a deleted one.
    const previous = table.users.get(edit.guid)
    if (previous === undefined) return
    editable(table).delete(edit.guid)
    return yield* PubSub.publish(table.changes, { _tag: "Removed", user: previous })
  }
  const previous = table.users.get(edit.user.guid)
  editable(table).set(edit.user.guid, edit.user)
  yield* PubSub.publish(
    table.changes,
    previous === undefined ? { _tag: "Added", user: edit.user } : { _tag: "Updated", user: edit.user, previous }
  )
})

/** The replication over one master connection: the initial load (announced as a reset), then the live edits. */
const replicate = Effect.fn("PbxDirectory.replicate")(function*(table: Table, connection: PbxConnection, attempt: Attempt) {
  const info = yield* Deferred.await(connection.pbxInfo).pipe(Effect.timeoutOption(table.settings.requestTimeoutMs))
  if (Option.isSome(info) && !(info.value.apis ?? []).includes("PbxTableUsers")) {
    return yield* Effect.logError(`PBX ${connection.pbx}: cannot read the user table; set the checkmark PbxTableUsers on the App object`)
  }
  const pushes = yield* PubSub.subscribe(connection.indications)
  const { loaded, ignored } = yield* loadTable(connection, attempt.window)
  attempt.failures = 0
  table.users = loaded
  yield* PubSub.publish(table.changes, { _tag: "Reset", users: handOut(table) })
  yield* Deferred.succeed(table.ready, undefined)
  yield* Effect.logInfo(
    `PBX ${connection.pbx}: user table loaded, ${loaded.size} users${ignored === "" ? "" : ` (objects that are not users, left out: ${ignored})`}`
  )
  while (true) {
    const { envelope, message } = yield* PubSub.take(pushes)
    if (envelope.api === "PbxTableUsers") yield* apply(table, connection.pbx, message)
  }
}, Effect.scoped)

/** How the replication over one connection goes on: ReplicateNext in flight, failures since the last complete load. */
interface Attempt {
  window: number
  failures: number
}

/** The wait before the replication starts again after its `failures`-th failure in a row: 1 s, doubling, at most 60 s. */
export const restartDelay = (failures: number): Duration.Duration => Duration.seconds(Math.min(60, 2 ** Math.max(0, failures - 1)))

/**
 * Follows one master connection until it closes. A failed request (a ReplicateNext the PBX did not answer in time, a
 * refusal) stops the replication with a log line, and it starts again on the same connection after `restartDelay`
 * (ReplicateStart restarts a replication, SDK Replication.htm); after a timeout with several ReplicateNext in flight it
 * goes on with one at a time, as the PBX may not answer more (docs/protocol-notes.md).
 */
const follow = (table: Table, connection: PbxConnection) =>
  Effect.raceFirst(
    Effect.gen(function*() {
      const attempt: Attempt = { window: replicationWindow, failures: 0 }
      while (true) {
        const failed = yield* replicate(table, connection, attempt).pipe(
          Effect.as(undefined),
          Effect.catchTag("PbxRequestError", (error) => Effect.succeed<PbxRequestError>(error))
        )
        if (failed === undefined || failed.reason === "disconnected") return
        attempt.failures++
        const narrowed = failed.reason === "timeout" && attempt.window > 1
        if (narrowed) attempt.window = 1
        const delay = restartDelay(attempt.failures)
        yield* Effect.logError(
          `User table replication stopped: ${clip(failed.message, 300)}; starting it again in ${Duration.format(delay)}` +
            (narrowed ? " with one ReplicateNext at a time" : "")
        )
        yield* Effect.sleep(delay)
      }
    }),
    Deferred.await(connection.closed)
  )
