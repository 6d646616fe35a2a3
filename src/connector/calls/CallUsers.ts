/**
 * Which users the PBX → Teams direction serves: the plan's synchronised pairs (matched and licensed), or only those
 * in a PBX group. Pure.
 */
import type { Plan } from "../Plan.ts"
import type { WatchedUser } from "../../pbx/calls/WatchProtocol.ts"

export interface CallUser extends WatchedUser {
  readonly teamsId: string
}

export const callUsers = (plan: Plan, group: string | undefined): ReadonlyArray<CallUser> => {
  const wanted = group?.trim().toLowerCase()
  return plan.synced
    .filter((s) => wanted === undefined || (s.pbx.groups ?? []).some((name) => name.trim().toLowerCase() === wanted))
    .map((s) => ({ guid: s.pbx.guid, h323: s.pbx.h323, cn: s.pbx.cn, loc: s.pbx.loc, teamsId: s.teams.id }))
}
