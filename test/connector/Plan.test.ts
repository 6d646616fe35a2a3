import { assert, describe, it } from "@effect/vitest"
import { makePlan, subscribedIds } from "../../src/connector/Plan.ts"
import type { TeamsUser } from "../../src/graph/TeamsUsers.ts"
import type { PbxUser } from "../../src/pbx/UserDirectory.ts"

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

describe("the plan", () => {
  it("synchronises matched users that hold a licence, in PBX guid order; the rest are listed with reasons", () => {
    const plan = makePlan({
      teamsUsers: [teams("T-B", "b@x.com"), teams("t-a", "a@x.com"), teams("t-c", "c@x.com"), teams("t-d", "d@x.com")],
      pbxUsers: [pbx("g2", "b@x.com"), pbx("g1", "a@x.com"), pbx("g3", "c@x.com")],
      licences: {
        licensedGuids: new Set(["g1", "g2"]),
        unlicensed: [{ user: pbx("g3", "c@x.com"), reason: "all 2 licences of App teams-presence are in use" }]
      },
      strategy: { _tag: "email" }
    })
    assert.deepStrictEqual(subscribedIds(plan), ["t-a", "T-B"])
    assert.deepStrictEqual(plan.unlicensed.map((u) => [u.teams.id, u.reason]), [["t-c", "all 2 licences of App teams-presence are in use"]])
    assert.deepStrictEqual(plan.unmatchedTeams.map((t) => t.id), ["t-d"])
    assert.strictEqual(plan.matchedCount, 3)
    // Lookups ignore the casing of Teams ids.
    assert.strictEqual(plan.byTeamsId.get("t-b")?.pbx.guid, "g2")
  })

  it("h323-email: the user name is the address", () => {
    const plan = makePlan({
      teamsUsers: [teams("t1", "anna@x.com")],
      pbxUsers: [pbx("g1", "other@x.com", { h323: "anna@x.com", h323Email: true })],
      licences: { licensedGuids: new Set(["g1"]), unlicensed: [] },
      strategy: { _tag: "email" }
    })
    assert.deepStrictEqual(subscribedIds(plan), ["t1"])
  })
})
