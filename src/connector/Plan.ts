/**
 * The plan: which Teams users are synchronised into which PBX users. Pure, in two steps: matching (Teams users, the
 * PBX directory, the strategy), then the plan from the matches and a licence verdict per matched PBX user. The
 * synchronised pairs are matched AND licensed, in a stable order; everybody left out carries a reason. A user whose
 * licence is unknown right now keeps what the previous plan decided: unknown is not unlicensed.
 */
import { teamsKey } from "../domain/TeamsId.ts"
import type { TeamsUser } from "../graph/users/TeamsUsers.ts"
import type { LicensingSummary, Verdict } from "../pbx/directory/Licences.ts"
import type { PbxUser } from "../pbx/directory/PbxDirectory.ts"
import { type Ambiguity, type MatchResult, matchUsers, type MatchStrategy, type PbxUserRef } from "./Matching.ts"

export interface SyncedUser {
  readonly teams: TeamsUser
  readonly pbx: PbxUser
}

export interface LeftOutUser extends SyncedUser {
  readonly reason: string
}

export interface Plan {
  /** False only for the plan before the first one: nothing about users or licences is known yet. */
  readonly ready: boolean
  /** Matched and licensed: the users whose presence is subscribed and written. Ordered by PBX guid. */
  readonly synced: ReadonlyArray<SyncedUser>
  /** Keyed by `teamsKey` (domain/TeamsId.ts): Graph does not promise the casing of ids in notifications. */
  readonly byTeamsId: ReadonlyMap<string, SyncedUser>
  /** Matched, and known not to be licensed. */
  readonly unlicensed: ReadonlyArray<LeftOutUser>
  /** Matched, licence not known now and not served before: not served until it is known. */
  readonly unknown: ReadonlyArray<LeftOutUser>
  readonly unmatchedTeams: ReadonlyArray<TeamsUser>
  readonly unmatchedPbx: ReadonlyArray<PbxUser>
  readonly ambiguous: ReadonlyArray<Ambiguity>
  /** The delegated technical accounts among the Teams users: they sign in for subscriptions, nobody's presence. */
  readonly technicalAccounts: ReadonlyArray<TeamsUser>
  /** Teams users to match: the technical accounts are not counted. */
  readonly teamsUserCount: number
  readonly pbxUserCount: number
  readonly matchedCount: number
  readonly licensing: LicensingSummary | undefined
}

export const emptyPlan: Plan = {
  ready: false,
  synced: [],
  byTeamsId: new Map(),
  unlicensed: [],
  unknown: [],
  unmatchedTeams: [],
  unmatchedPbx: [],
  ambiguous: [],
  technicalAccounts: [],
  teamsUserCount: 0,
  pbxUserCount: 0,
  matchedCount: 0,
  licensing: undefined
}

type PbxRef = PbxUserRef & { readonly user: PbxUser }

/** The PBX user as the matcher sees it: with `h323-email` set, the user name itself is an e-mail address. */
const pbxRef = (user: PbxUser): PbxRef => ({
  guid: user.guid,
  h323: user.h323,
  cn: user.cn,
  emails: user.emails,
  ...(user.h323Email === true && user.h323.includes("@") ? { h323Email: user.h323 } : {}),
  user
})

export interface PlanMatch {
  readonly result: MatchResult<TeamsUser, PbxRef>
  readonly technicalAccounts: ReadonlyArray<TeamsUser>
  readonly teamsUserCount: number
  readonly pbxUserCount: number
}

/** Whether a Teams user is one of the technical accounts (by user name, as `accounts[].username` gives it). */
const isTechnicalAccount = (names: ReadonlySet<string>) => (user: TeamsUser): boolean =>
  names.has(user.userPrincipalName.toLowerCase()) || (user.mail !== null && names.has(user.mail.toLowerCase()))

/** Step 1: who is who. The technical accounts (user names) are set aside: nobody's presence, not to be matched. */
export const matchForPlan = (input: {
  readonly teamsUsers: ReadonlyArray<TeamsUser>
  readonly pbxUsers: Iterable<PbxUser>
  readonly strategy: MatchStrategy
  readonly technicalAccounts?: ReadonlyArray<string> | undefined
}): PlanMatch => {
  const pbxUsers = [...input.pbxUsers]
  const technical = isTechnicalAccount(new Set((input.technicalAccounts ?? []).map((name) => name.toLowerCase())))
  const technicalAccounts = input.teamsUsers.filter(technical)
  const teamsUsers = technicalAccounts.length === 0 ? input.teamsUsers : input.teamsUsers.filter((user) => !technical(user))
  return {
    result: matchUsers(teamsUsers, pbxUsers.map(pbxRef), input.strategy),
    technicalAccounts,
    teamsUserCount: teamsUsers.length,
    pbxUserCount: pbxUsers.length
  }
}

/** The PBX users whose licence the plan needs: the matched ones. */
export const matchedPbxUsers = (match: PlanMatch): ReadonlyArray<PbxUser> => match.result.matched.map((m) => m.pbx.user)

/**
 * Step 2: who is served. A user whose licence is unknown now keeps being served if `previous` served them, or if a
 * live presence subscription holds them (`held`, by `teamsKey`: what a restart adopted).
 */
export const makePlan = (input: {
  readonly match: PlanMatch
  readonly verdicts: ReadonlyMap<string, Verdict>
  readonly licensing: LicensingSummary
  readonly previous?: Plan | undefined
  readonly held?: ReadonlySet<string> | undefined
}): Plan => {
  const synced: Array<SyncedUser> = []
  const unlicensed: Array<LeftOutUser> = []
  const unknown: Array<LeftOutUser> = []
  for (const match of input.match.result.matched) {
    const pair = { teams: match.teams, pbx: match.pbx.user }
    const verdict = input.verdicts.get(pair.pbx.guid) ?? { _tag: "Unknown", reason: "the licence was not checked" }
    if (verdict._tag === "Licensed") synced.push(pair)
    else if (verdict._tag === "Unlicensed") unlicensed.push({ ...pair, reason: verdict.reason })
    else if (
      input.previous?.byTeamsId.get(teamsKey(pair.teams.id))?.pbx.guid === pair.pbx.guid ||
      input.held?.has(teamsKey(pair.teams.id)) === true
    ) synced.push(pair)
    else unknown.push({ ...pair, reason: verdict.reason })
  }
  return {
    ready: true,
    synced,
    byTeamsId: new Map(synced.map((s) => [teamsKey(s.teams.id), s])),
    unlicensed,
    unknown,
    unmatchedTeams: input.match.result.unmatchedTeams,
    unmatchedPbx: input.match.result.unmatchedPbx.map((p) => p.user),
    ambiguous: input.match.result.ambiguous,
    technicalAccounts: input.match.technicalAccounts,
    teamsUserCount: input.match.teamsUserCount,
    pbxUserCount: input.match.pbxUserCount,
    matchedCount: input.match.result.matched.length,
    licensing: input.licensing
  }
}

/** The Teams ids to subscribe, in the plan's stable order. */
export const subscribedIds = (plan: Plan): ReadonlyArray<string> => plan.synced.map((s) => s.teams.id)
