/**
 * The plan: which Teams users are synchronised into which PBX users. Pure — Teams users, the PBX directory, the licence
 * assignment and the matching strategy in; the synchronised pairs (matched AND licensed, in a stable order) and the
 * reasons for everybody left out.
 */
import type { TeamsUser } from "../graph/TeamsUsers.ts"
import type { LicenceState } from "../pbx/Licences.ts"
import type { PbxUser } from "../pbx/UserDirectory.ts"
import { type Ambiguity, matchUsers, type MatchStrategy, type PbxUserRef } from "./Matching.ts"

export interface SyncedUser {
  readonly teams: TeamsUser
  readonly pbx: PbxUser
}

export interface Plan {
  /** Matched and licensed: the users whose presence is subscribed and written. Ordered by PBX guid. */
  readonly synced: ReadonlyArray<SyncedUser>
  /** Keyed by the Teams id in lower case: Graph does not promise the casing of ids in notifications. */
  readonly byTeamsId: ReadonlyMap<string, SyncedUser>
  readonly unlicensed: ReadonlyArray<{ readonly teams: TeamsUser; readonly pbx: PbxUser; readonly reason: string }>
  readonly unmatchedTeams: ReadonlyArray<TeamsUser>
  readonly unmatchedPbx: ReadonlyArray<PbxUser>
  readonly ambiguous: ReadonlyArray<Ambiguity>
  readonly teamsUserCount: number
  readonly pbxUserCount: number
  readonly matchedCount: number
}

export const emptyPlan: Plan = {
  synced: [],
  byTeamsId: new Map(),
  unlicensed: [],
  unmatchedTeams: [],
  unmatchedPbx: [],
  ambiguous: [],
  teamsUserCount: 0,
  pbxUserCount: 0,
  matchedCount: 0
}

/** The PBX user as the matcher sees it: with `h323-email` set, the user name itself is an e-mail address. */
const pbxRef = (user: PbxUser): PbxUserRef & { readonly user: PbxUser } => ({
  guid: user.guid,
  h323: user.h323,
  cn: user.cn,
  emails: user.emails,
  ...(user.h323Email === true && user.h323.includes("@") ? { h323Email: user.h323 } : {}),
  user
})

export const makePlan = (input: {
  readonly teamsUsers: ReadonlyArray<TeamsUser>
  readonly pbxUsers: Iterable<PbxUser>
  readonly licences: Pick<LicenceState, "licensedGuids" | "unlicensed">
  readonly strategy: MatchStrategy
}): Plan => {
  const pbxUsers = [...input.pbxUsers]
  const result = matchUsers(input.teamsUsers, pbxUsers.map(pbxRef), input.strategy)
  const unlicensedReason = new Map(input.licences.unlicensed.map((u) => [u.user.guid, u.reason]))
  const synced: Array<SyncedUser> = []
  const unlicensed: Array<{ teams: TeamsUser; pbx: PbxUser; reason: string }> = []
  for (const match of result.matched) {
    const pair = { teams: match.teams, pbx: match.pbx.user }
    if (input.licences.licensedGuids.has(pair.pbx.guid)) synced.push(pair)
    else unlicensed.push({ ...pair, reason: unlicensedReason.get(pair.pbx.guid) ?? "no licence assigned" })
  }
  return {
    synced,
    byTeamsId: new Map(synced.map((s) => [s.teams.id.toLowerCase(), s])),
    unlicensed,
    unmatchedTeams: result.unmatchedTeams,
    unmatchedPbx: result.unmatchedPbx.map((p) => p.user),
    ambiguous: result.ambiguous,
    teamsUserCount: input.teamsUsers.length,
    pbxUserCount: pbxUsers.length,
    matchedCount: result.matched.length
  }
}

/** The Teams ids to subscribe, in the plan's stable order. */
export const subscribedIds = (plan: Plan): ReadonlyArray<string> => plan.synced.map((s) => s.teams.id)
