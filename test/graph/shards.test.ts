/** Pure shard planning and the licence filter: sticky shards of at most N users, Teams users compared by teamsKey. */
import { assert, describe, it } from "@effect/vitest"
import { permittedUsers } from "../../src/graph/subscriptions/SubscriptionLicenceCheck.ts"
import { planShards, sameMembers } from "../../src/graph/subscriptions/SubscriptionShards.ts"

describe("planShards", () => {
  it("fills the accounts in order, keeps every user in its shard, and puts the rest in account-less shards", () => {
    const first = planShards([], ["a", "b", "c", "d", "e"], ["tech1", "tech2"], 2)
    assert.deepStrictEqual(first, [
      { key: "tech1", account: "tech1", userIds: ["a", "b"] },
      { key: "tech2", account: "tech2", userIds: ["c", "d"] },
      { key: "needs-account-0", account: undefined, userIds: ["e"] }
    ])
    // a leaves, f joins: b, c and d stay where they were; the free place goes to the first unplaced user in the given order
    const second = planShards(first.filter((s) => s.account !== undefined), ["b", "c", "d", "e", "f"], ["tech1", "tech2"], 2)
    assert.deepStrictEqual(second, [
      { key: "tech1", account: "tech1", userIds: ["b", "e"] },
      { key: "tech2", account: "tech2", userIds: ["c", "d"] },
      { key: "needs-account-0", account: undefined, userIds: ["f"] }
    ])
  })

  it("a user named in another case stays in its shard and is not planned twice", () => {
    const current = [{ key: "tech1", account: "tech1", userIds: ["AAAA-1"] }]
    assert.deepStrictEqual(planShards(current, ["aaaa-1", "bbbb-2"], ["tech1"], 2), [
      { key: "tech1", account: "tech1", userIds: ["AAAA-1", "bbbb-2"] }
    ])
  })
})

describe("sameMembers and permittedUsers", () => {
  it("compare Teams users by teamsKey", () => {
    assert.isTrue(sameMembers(["AAAA-1", "bbbb-2"], ["BBBB-2", "aaaa-1"]))
    assert.isFalse(sameMembers(["aaaa-1"], ["aaaa-1", "bbbb-2"]))
    assert.isFalse(sameMembers(["aaaa-1", "bbbb-2"], ["aaaa-1", "cccc-3"]))
    const answers = new Map([["aaaa-1", "unknown" as const], ["bbbb-2", "unlicensed" as const], ["cccc-3", "licensed" as const]])
    // an unknown answer keeps a user the subscription holds (named there in another case); nobody is added on one
    assert.deepStrictEqual(permittedUsers(["aaaa-1", "bbbb-2", "cccc-3"], answers, ["AAAA-1", "BBBB-2"]), ["aaaa-1", "cccc-3"])
    assert.deepStrictEqual(permittedUsers(["aaaa-1", "bbbb-2", "cccc-3"], answers, []), ["cccc-3"])
  })
})
