/**
 * The status page's user table, rebuilt incrementally: a row is built again only when one of its inputs is another
 * object than last time (the flow and the writer replace an entry when it changes, never mutate it), so a projection
 * costs what changed, not the size of the table.
 */
import { Effect } from "effect"
import { commandLabel } from "../domain/PbxPresence.ts"
import { isUnknown } from "../domain/Presence.ts"
import type { WrittenPresence } from "../pbx/writer/WriterState.ts"
import type { PresenceRow } from "../connector/PresencePipeline.ts"
import { teamsKey } from "../domain/TeamsId.ts"
import type { Plan } from "../connector/Plan.ts"
import type { UserRow } from "./StatusBoard.ts"

type SyncedTeams = Plan["synced"][number]["teams"]
type SyncedPbx = Plan["synced"][number]["pbx"]

const userRow = (
  teams: SyncedTeams,
  pbx: SyncedPbx,
  licensed: boolean,
  row: PresenceRow | undefined,
  sent: WrittenPresence | undefined
): UserRow => {
  // Built in place rather than with spreads: during a burst every row is rebuilt on each projection.
  const out: { -readonly [K in keyof UserRow]: UserRow[K] } = {
    teamsId: teams.id,
    name: teams.displayName,
    upn: teams.userPrincipalName,
    pbxGuid: pbx.guid,
    pbxName: pbx.h323,
    pbx: pbx.loc,
    licensed,
    availability: row === undefined ? "—" : isUnknown(row.presence.availability) ? row.presence.availability.raw : row.presence.availability,
    activity: row === undefined ? "—" : isUnknown(row.presence.activity) ? row.presence.activity.raw : row.presence.activity,
    written: licensed && sent !== undefined ? commandLabel(sent.command) : "—"
  }
  if (row !== undefined) {
    out.lastChangeAt = row.receivedAt
    if (sent !== undefined && sent.sentAt >= row.receivedAt) out.delayMs = sent.sentAt - row.receivedAt
  }
  return out
}

interface CachedRow {
  /** The key of the pipeline's rows (`teamsKey`), computed once. */
  readonly key: string
  readonly teams: SyncedTeams
  readonly pbx: SyncedPbx
  readonly licensed: boolean
  readonly row: PresenceRow | undefined
  readonly sent: WrittenPresence | undefined
  readonly out: UserRow
}

/** Users looked at between two yields to the event loop, so that a webhook request never waits for the whole table. */
const rowsPerSlice = 250

/** What changed since the last projection, as the flow and the writer record it. */
export interface RowChanges {
  /** Teams users (`teamsKey`) whose pipeline row was replaced. */
  readonly teamsKeys: ReadonlySet<string>
  /** PBX users (guids) whose confirmed write was replaced. */
  readonly guids: ReadonlySet<string>
}

/** The table as last built: its rows, where each user's row sits (by Teams key and by PBX guid), the cache. */
interface Table {
  /** The entries of the current table, by Teams id (as the plan has it). */
  cache: Map<string, CachedRow>
  lastPlan: Plan | undefined
  last: ReadonlyArray<UserRow>
  positions: Array<CachedRow>
  byTeamsKey: Map<string, number>
  byGuid: Map<string, number>
}

/** A user's entry, the same object when none of its inputs is another object than last time. */
const refresh = (
  entry: CachedRow | undefined,
  teams: SyncedTeams,
  pbx: SyncedPbx,
  licensed: boolean,
  rows: ReadonlyMap<string, PresenceRow>,
  written: ReadonlyMap<string, WrittenPresence>
): CachedRow => {
  const key = entry?.key ?? teamsKey(teams.id)
  const row = rows.get(key)
  const sent = written.get(pbx.guid)
  if (
    entry !== undefined && entry.teams === teams && entry.pbx === pbx && entry.licensed === licensed && entry.row === row &&
    entry.sent === sent
  ) return entry
  return { key, teams, pbx, licensed, row, sent, out: userRow(teams, pbx, licensed, row, sent) }
}

/** Every user of the plan looked at (in slices between which other fibers run); unchanged entries are kept. */
const fullScan = Effect.fnUntraced(function*(
  table: Table,
  plan: Plan,
  rows: ReadonlyMap<string, PresenceRow>,
  written: ReadonlyMap<string, WrittenPresence>
) {
  const out: Array<UserRow> = []
  const entries: Array<CachedRow> = []
  const kept = new Map<string, CachedRow>()
  const byTeamsKey = new Map<string, number>()
  const byGuid = new Map<string, number>()
  let changed = false
  const add = (teams: SyncedTeams, pbx: SyncedPbx, licensed: boolean) => {
    const entry = refresh(table.cache.get(teams.id), teams, pbx, licensed, rows, written)
    if (table.last[out.length] !== entry.out) changed = true
    kept.set(teams.id, entry)
    byTeamsKey.set(entry.key, out.length)
    byGuid.set(pbx.guid, out.length)
    entries.push(entry)
    out.push(entry.out)
  }
  for (const s of plan.synced) {
    add(s.teams, s.pbx, true)
    if (out.length % rowsPerSlice === 0) yield* Effect.yieldNow
  }
  for (const u of [...plan.unlicensed, ...plan.unknown]) {
    add(u.teams, u.pbx, false)
    if (out.length % rowsPerSlice === 0) yield* Effect.yieldNow
  }
  // Users no longer in the plan leave the cache with the table.
  Object.assign(table, { lastPlan: plan, cache: kept, positions: entries, byTeamsKey, byGuid })
  if (changed || out.length !== table.last.length) table.last = out
  return table.last
})

/** Only the users named in `changes` looked at; the others keep their rows. */
const changedOnly = Effect.fnUntraced(function*(
  table: Table,
  rows: ReadonlyMap<string, PresenceRow>,
  written: ReadonlyMap<string, WrittenPresence>,
  changes: RowChanges
) {
  const indices = new Set<number>()
  for (const key of changes.teamsKeys) {
    const index = table.byTeamsKey.get(key)
    if (index !== undefined) indices.add(index)
  }
  for (const guid of changes.guids) {
    const index = table.byGuid.get(guid)
    if (index !== undefined) indices.add(index)
  }
  let out: Array<UserRow> | undefined
  let done = 0
  for (const index of indices) {
    const before = table.positions[index]!
    const entry = refresh(before, before.teams, before.pbx, before.licensed, rows, written)
    if (entry !== before) {
      table.positions[index] = entry
      table.cache.set(entry.teams.id, entry)
      out ??= [...table.last]
      out[index] = entry.out
    }
    if (++done % rowsPerSlice === 0) yield* Effect.yieldNow
  }
  if (out !== undefined) table.last = out
  return table.last
})

/**
 * The user table. When no row changed, the previous array itself is returned. Without `changes`, or when the plan is
 * another one, every user is looked at, and the rows of users whose inputs are the same objects as before are kept — a
 * re-plan rebuilds only the rows it changed; with `changes` and the same plan, only the users named there are looked at.
 */
export const makeUserRows = () => {
  const table: Table = {
    cache: new Map(),
    lastPlan: undefined,
    last: [],
    positions: [],
    byTeamsKey: new Map(),
    byGuid: new Map()
  }
  return (
    plan: Plan,
    rows: ReadonlyMap<string, PresenceRow>,
    written: ReadonlyMap<string, WrittenPresence>,
    changes?: RowChanges
  ): Effect.Effect<ReadonlyArray<UserRow>> =>
    changes !== undefined && plan === table.lastPlan
      ? changedOnly(table, rows, written, changes)
      : fullScan(table, plan, rows, written)
}
