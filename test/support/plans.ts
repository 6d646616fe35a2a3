/** A plan of numbered users (Teams user n matched to PBX user n) and the rows the status page's table is made of. */
import type { PresenceRow } from "../../src/connector/PresencePipeline.ts"
import { emptyPlan, type Plan } from "../../src/connector/Plan.ts"
import { setPresence } from "../../src/domain/PbxPresence.ts"
import { teamsKey } from "../../src/domain/TeamsId.ts"
import type { TeamsUser } from "../../src/graph/users/TeamsUsers.ts"
import type { PbxUser } from "../../src/pbx/directory/PbxDirectory.ts"
import type { WrittenPresence } from "../../src/pbx/writer/WriterState.ts"

export const teamsUser = (n: number): TeamsUser => ({
  // Mixed case: the pipeline keys its rows by `teamsKey`.
  id: `AAAAAAAA-0000-0000-0000-${String(n).padStart(12, "0")}`,
  displayName: `User ${n}`,
  userPrincipalName: `user${n}@contoso.com`,
  mail: `user${n}@contoso.com`,
  otherMails: []
})

export const pbxUser = (n: number): PbxUser => ({
  guid: `g${String(n).padStart(31, "0")}`,
  h323: `user${n}`,
  cn: `User ${n}`,
  dn: `User ${n}`,
  e164: `${1000 + n}`,
  emails: [`user${n}@contoso.com`],
  loc: "pbx-master",
  node: "root",
  apps: ["teams-presence"],
  hide: false
})

export const planOf = (synced: ReadonlyArray<number>, unlicensed: ReadonlyArray<number> = []): Plan => {
  const pairs = synced.map((n) => ({ teams: teamsUser(n), pbx: pbxUser(n) }))
  return {
    ...emptyPlan,
    synced: pairs,
    byTeamsId: new Map(pairs.map((pair) => [teamsKey(pair.teams.id), pair])),
    unlicensed: unlicensed.map((n) => ({ teams: teamsUser(n), pbx: pbxUser(n), reason: "no licence left" })),
    matchedCount: synced.length + unlicensed.length
  }
}

/** Keeps the plan's user objects, as the planner does for users it did not touch. */
export const samePairs = (plan: Plan, keep: (n: number) => boolean): Plan => {
  const synced = plan.synced.filter((s) => keep(Number(s.pbx.h323.replace(/\D/g, ""))))
  return { ...plan, synced, byTeamsId: new Map(synced.map((s) => [teamsKey(s.teams.id), s])) }
}

export const busyRow = (n: number, receivedAt: number): PresenceRow => ({
  presence: { id: teamsUser(n).id, availability: "Busy", activity: "InACall" },
  command: setPresence("busy"),
  receivedAt,
  origin: "push"
})

export const sent = (sentAt: number): WrittenPresence => ({ command: setPresence("busy"), pbx: "pbx-master", sentAt })

export const key = (n: number) => teamsKey(teamsUser(n).id)
