import { assert, describe, it } from "@effect/vitest"
import { matchUsers, type PbxUserRef, type TeamsUserRef } from "../../src/connector/Matching.ts"

const teams = (id: string, mail: string, extra: Partial<TeamsUserRef> = {}): TeamsUserRef => ({
  id,
  displayName: extra.displayName ?? id,
  userPrincipalName: extra.userPrincipalName ?? mail,
  mail,
  otherMails: extra.otherMails ?? []
})
const pbx = (guid: string, emails: Array<string>, extra: Partial<PbxUserRef> = {}): PbxUserRef => ({
  guid,
  h323: extra.h323 ?? guid,
  cn: extra.cn ?? guid,
  emails,
  ...(extra.h323Email !== undefined ? { h323Email: extra.h323Email } : {})
})

describe("user matching", () => {
  it("email: mail, UPN and otherMails against PBX emails and h323-email, ignoring case", () => {
    const result = matchUsers(
      [
        teams("t1", "Alice@Contoso.com"),
        teams("t2", "bob@contoso.com", { userPrincipalName: "bob@contoso.onmicrosoft.com", otherMails: ["Robert@home.example"] }),
        teams("t3", "carol@contoso.com"),
        teams("t4", "nobody@contoso.com")
      ],
      [pbx("g1", ["alice@contoso.com"]), pbx("g2", ["robert@HOME.example"]), pbx("g3", [], { h323Email: "CAROL@contoso.com" }), pbx("g9", ["x@y.z"])],
      { _tag: "email" }
    )
    assert.deepStrictEqual(result.matched.map((m) => [m.teams.id, m.pbx.guid]), [["t1", "g1"], ["t2", "g2"], ["t3", "g3"]])
    assert.deepStrictEqual(result.unmatchedTeams.map((t) => t.id), ["t4"])
    assert.deepStrictEqual(result.unmatchedPbx.map((p) => p.guid), ["g9"])
    assert.deepStrictEqual(result.ambiguous, [])
  })

  it("two PBX users with one address: neither is synced, the reason is listed", () => {
    const result = matchUsers([teams("t1", "a@x.com"), teams("t2", "b@x.com")], [pbx("g1", ["a@x.com"]), pbx("g2", ["A@x.com"]), pbx("g3", ["b@x.com"])], {
      _tag: "email"
    })
    assert.deepStrictEqual(result.matched.map((m) => m.teams.id), ["t2"])
    assert.strictEqual(result.ambiguous.length, 1)
    assert.deepStrictEqual([...result.ambiguous[0]!.pbxGuids].sort(), ["g1", "g2"])
    assert.match(result.ambiguous[0]!.reason, /2 PBX users share/)
  })

  it("two Teams users for one PBX user: neither is synced", () => {
    const result = matchUsers(
      [teams("t1", "a@x.com"), teams("t2", "other@x.com", { otherMails: ["a@x.com"] })],
      [pbx("g1", ["a@x.com"])],
      { _tag: "email" }
    )
    assert.deepStrictEqual(result.matched, [])
    assert.strictEqual(result.ambiguous.length, 1)
    assert.deepStrictEqual([...result.ambiguous[0]!.teamsIds].sort(), ["t1", "t2"])
    assert.match(result.ambiguous[0]!.reason, /2 Teams users match one PBX user/)
  })

  it("one Teams user whose addresses hit two PBX users: neither is synced", () => {
    const result = matchUsers([teams("t1", "a@x.com", { otherMails: ["b@x.com"] })], [pbx("g1", ["a@x.com"]), pbx("g2", ["b@x.com"])], {
      _tag: "email"
    })
    assert.deepStrictEqual(result.matched, [])
    assert.strictEqual(result.ambiguous.length, 1)
  })

  it("displayName: Teams displayName = PBX cn, as the original connector does", () => {
    const result = matchUsers(
      [teams("t1", "a@x.com", { displayName: "Charlotte Maihoff" }), teams("t2", "b@x.com", { displayName: "Nobody" })],
      [pbx("g1", [], { cn: "charlotte maihoff" }), pbx("g2", [], { cn: "Someone" })],
      { _tag: "displayName" }
    )
    assert.deepStrictEqual(result.matched.map((m) => [m.teams.id, m.pbx.guid]), [["t1", "g1"]])
  })

  it("file: Teams id or UPN → PBX h323 or guid", () => {
    const result = matchUsers(
      [teams("t1", "a@x.com"), teams("t2", "b@x.com")],
      [pbx("g1", [], { h323: "alice" }), pbx("g2", [], { h323: "bob" })],
      { _tag: "file", pairs: { t1: "alice", "B@x.com": "g2" } }
    )
    assert.deepStrictEqual(result.matched.map((m) => [m.teams.id, m.pbx.guid]), [["t1", "g1"], ["t2", "g2"]])
  })
})
