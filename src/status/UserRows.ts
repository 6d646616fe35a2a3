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
  /** The key of the flow's rows (lower-case Teams id), computed once. */
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
  /** Teams users (lower-case ids) whose flow row was replaced. */
  readonly teamsKeys: ReadonlySet<string>
  /** PBX users (guids) whose confirmed write was replaced. */
  readonly guids: ReadonlySet<string>
}

/**
 * The user table. When no row changed, the previous array itself is returned. Without `changes`, or when the plan is
 * another one, every user is looked at (in slices between which other fibers run), and the rows of users whose inputs
 * are the same objects as before are kept — a re-plan rebuilds only the rows it changed; with `changes` and the same
 * plan, only the users named there are looked at.
 */
export const makeUserRows = () => {
  /** The entries of the current table, by Teams id (as the plan has it). */
  let cache = new Map<string, CachedRow>()
  let lastPlan: Plan | undefined
  let last: ReadonlyArray<UserRow> = []
  /** Where each user's row sits in `last`, by Teams key and by PBX guid, with its cache entry. */
  let positions: Array<CachedRow> = []
  let byTeamsKey = new Map<string, number>()
  let byGuid = new Map<string, number>()

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

  const fullScan = Effect.fnUntraced(function*(
    plan: Plan,
    rows: ReadonlyMap<string, PresenceRow>,
    written: ReadonlyMap<string, WrittenPresence>
  ) {
    lastPlan = plan
    const out: Array<UserRow> = []
    const entries: Array<CachedRow> = []
    const kept = new Map<string, CachedRow>()
    const teamsIndex = new Map<string, number>()
    const guidIndex = new Map<string, number>()
    let changed = false
    const add = (teams: SyncedTeams, pbx: SyncedPbx, licensed: boolean) => {
      const entry = refresh(cache.get(teams.id), teams, pbx, licensed, rows, written)
      if (last[out.length] !== entry.out) changed = true
      kept.set(teams.id, entry)
      teamsIndex.set(entry.key, out.length)
      guidIndex.set(pbx.guid, out.length)
      entries.push(entry)
      out.push(entry.out)
    }
    let seen = 0
    for (const s of plan.synced) {
      add(s.teams, s.pbx, true)
      if (++seen % rowsPerSlice === 0) yield* Effect.yieldNow
    }
    for (const u of [...plan.unlicensed, ...plan.unknown]) {
      add(u.teams, u.pbx, false)
      if (++seen % rowsPerSlice === 0) yield* Effect.yieldNow
    }
    // Users no longer in the plan leave the cache with the table.
    cache = kept
    positions = entries
    byTeamsKey = teamsIndex
    byGuid = guidIndex
    if (!changed && out.length === last.length) return last
    last = out
    return out
  })

  const changedOnly = Effect.fnUntraced(function*(
    rows: ReadonlyMap<string, PresenceRow>,
    written: ReadonlyMap<string, WrittenPresence>,
    changes: RowChanges
  ) {
    const indices = new Set<number>()
    for (const key of changes.teamsKeys) {
      const index = byTeamsKey.get(key)
      if (index !== undefined) indices.add(index)
    }
    for (const guid of changes.guids) {
      const index = byGuid.get(guid)
      if (index !== undefined) indices.add(index)
    }
    let out: Array<UserRow> | undefined
    let done = 0
    for (const index of indices) {
      const before = positions[index]!
      const entry = refresh(before, before.teams, before.pbx, before.licensed, rows, written)
      if (entry !== before) {
        positions[index] = entry
        cache.set(entry.teams.id, entry)
        out ??= [...last]
        out[index] = entry.out
      }
      if (++done % rowsPerSlice === 0) yield* Effect.yieldNow
    }
    if (out === undefined) return last
    last = out
    return out
  })

  return (
    plan: Plan,
    rows: ReadonlyMap<string, PresenceRow>,
    written: ReadonlyMap<string, WrittenPresence>,
    changes?: RowChanges
  ): Effect.Effect<ReadonlyArray<UserRow>> =>
    changes !== undefined && plan === lastPlan ? changedOnly(rows, written, changes) : fullScan(plan, rows, written)
}
