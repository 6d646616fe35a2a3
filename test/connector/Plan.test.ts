import { assert, describe, it } from "@effect/vitest"
import { emptyPlan, makePlan, matchedPbxUsers, matchForPlan, subscribedIds } from "../../src/connector/Plan.ts"
import type { Verdict } from "../../src/pbx/directory/Licences.ts"
import type { TeamsUser } from "../../src/graph/users/TeamsUsers.ts"
import type { PbxUser } from "../../src/pbx/directory/PbxDirectory.ts"

const teams = (id: string, mail: string): TeamsUser => ({ id, displayName: mail, userPrincipalName: mail, mail, otherMails: [] })
const pbx = (guid: string, email: string, extra: Partial<PbxUser> = {}): PbxUser => ({
  guid,
  h323: guid,
  cn: guid,
  dn: guid,
  e164: "",
  emails: [email],
  loc: "pbx-master",
  node: "root",
  apps: ["teams-presence"],
  hide: false,
  ...extra
})

const licensing = { mode: "appRight" as const, name: "teams-presence" }
const verdicts = (entries: Record<string, Verdict>) => new Map(Object.entries(entries))
const yes: Verdict = { _tag: "Licensed" }
const no = (reason: string): Verdict => ({ _tag: "Unlicensed", reason })
const notKnown: Verdict = { _tag: "Unknown", reason: "the master PBX is not connected" }

describe("the plan", () => {
  it("synchronises matched users that hold a licence, in PBX guid order; the rest are listed with reasons", () => {
    const match = matchForPlan({
      teamsUsers: [teams("T-B", "b@x.com"), teams("t-a", "a@x.com"), teams("t-c", "c@x.com"), teams("t-d", "d@x.com")],
      pbxUsers: [pbx("g2", "b@x.com"), pbx("g1", "a@x.com"), pbx("g3", "c@x.com")],
      strategy: { _tag: "email" }
    })
    assert.deepStrictEqual(matchedPbxUsers(match).map((u) => u.guid).sort(), ["g1", "g2", "g3"])
    const plan = makePlan({ match, verdicts: verdicts({ g1: yes, g2: yes, g3: no("pbx.maxUsers allows 2 users and they are in use") }), licensing })
    assert.isTrue(plan.ready)
    assert.deepStrictEqual(subscribedIds(plan), ["t-a", "T-B"])
    assert.deepStrictEqual(plan.unlicensed.map((u) => [u.teams.id, u.reason]), [["t-c", "pbx.maxUsers allows 2 users and they are in use"]])
    assert.deepStrictEqual(plan.unmatchedTeams.map((t) => t.id), ["t-d"])
    assert.strictEqual(plan.matchedCount, 3)
    assert.deepStrictEqual(plan.licensing, licensing)
    // Lookups ignore the casing of Teams ids.
    assert.strictEqual(plan.byTeamsId.get("t-b")?.pbx.guid, "g2")
  })

  it("an unknown licence keeps what the previous plan decided: served stays served, the others wait", () => {
    const match = matchForPlan({
      teamsUsers: [teams("t1", "a@x.com"), teams("t2", "b@x.com"), teams("t3", "c@x.com")],
      pbxUsers: [pbx("g1", "a@x.com"), pbx("g2", "b@x.com"), pbx("g3", "c@x.com")],
      strategy: { _tag: "email" }
    })
    const first = makePlan({ match, verdicts: verdicts({ g1: yes, g2: no("no licence"), g3: notKnown }), licensing })
    assert.deepStrictEqual(subscribedIds(first), ["t1"])
    assert.deepStrictEqual(first.unknown.map((u) => [u.teams.id, u.reason]), [["t3", "the master PBX is not connected"]])
    const second = makePlan({ match, verdicts: verdicts({ g1: notKnown, g2: notKnown, g3: notKnown }), licensing, previous: first })
    assert.deepStrictEqual(subscribedIds(second), ["t1"], "unknown is not unlicensed: t1 stays")
    assert.deepStrictEqual(second.unknown.map((u) => u.teams.id), ["t2", "t3"], "and unknown is not licensed either")
    assert.deepStrictEqual(subscribedIds(makePlan({ match, verdicts: verdicts({ g1: no("revoked") }), licensing, previous: second })), [])
    // After a restart there is no previous plan: the users a stored subscription holds count as served.
    const restarted = makePlan({ match, verdicts: verdicts({ g1: notKnown, g2: notKnown, g3: notKnown }), licensing, held: new Set(["t2"]) })
    assert.deepStrictEqual(subscribedIds(restarted), ["t2"])
  })

  it("h323-email: the user name is the address", () => {
    const match = matchForPlan({
      teamsUsers: [teams("t1", "anna@x.com")],
      pbxUsers: [pbx("g1", "other@x.com", { h323: "anna@x.com", h323Email: true })],
      strategy: { _tag: "email" }
    })
    assert.deepStrictEqual(subscribedIds(makePlan({ match, verdicts: verdicts({ g1: yes }), licensing })), ["t1"])
  })

  it("the technical accounts are no Teams users to match: neither counted nor unmatched", () => {
    const match = matchForPlan({
      teamsUsers: [teams("t1", "a@x.com"), teams("sa", "Presence-1@x.com"), teams("t2", "lonely@x.com")],
      pbxUsers: [pbx("g1", "a@x.com")],
      strategy: { _tag: "email" },
      technicalAccounts: ["presence-1@X.com"]
    })
    const plan = makePlan({ match, verdicts: verdicts({ g1: yes }), licensing })
    assert.deepStrictEqual(subscribedIds(plan), ["t1"])
    assert.deepStrictEqual(plan.unmatchedTeams.map((t) => t.id), ["t2"])
    assert.deepStrictEqual(plan.technicalAccounts.map((t) => t.id), ["sa"])
    assert.strictEqual(plan.teamsUserCount, 2)
  })

  it("the plan before the first one is not ready", () => {
    assert.isFalse(emptyPlan.ready)
  })
})
