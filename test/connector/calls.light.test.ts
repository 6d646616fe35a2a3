/** The PBX → Teams light (pure): what is red, what is amber, and what it says to do. */
import { assert, describe, it } from "@effect/vitest"
import { pbxToTeamsLight, writesRedAfterMillis } from "../../src/connector/calls/PbxToTeamsStatus.ts"
import type { UserWatch } from "../../src/pbx/calls/CallWatch.ts"

const watch = (n: number, status: UserWatch["status"], reason?: string): UserWatch => ({
  user: { guid: `g${n}`, h323: `u${n}`, cn: `U ${n}`, loc: "pbx" },
  pbx: "pbx",
  status,
  inCall: false,
  ...(reason !== undefined ? { reason } : {})
})
const live = [watch(1, "live"), watch(2, "live")]
const ok = { waiting: 0, retrying: 0 }

describe("PBX → Teams light", () => {
  it("green while every user is watched, with the calls", () => {
    const light = pbxToTeamsLight({ source: "presence", missingApi: [], watches: live, health: ok, inCall: 1, now: 0 })
    assert.deepStrictEqual([light.state, light.reason], ["green", "watching the calls of 2 of 2 users (presence); 1 in a PBX call"])
  })

  it("red: a missing checkmark, or writes Graph refuses as not permitted; after five minutes any failing write", () => {
    const api = pbxToTeamsLight({ source: "rcc", missingApi: ["pbx-slave"], watches: live, health: ok, inCall: 0, now: 0 })
    assert.strictEqual(api.state, "red")
    assert.strictEqual(api.fix, "Set the checkmark RCC on the App object of pbx-slave")
    const denied = pbxToTeamsLight({ source: "presence", missingApi: [], watches: live, health: { waiting: 0, retrying: 2, failing: { message: "setPresence for x: Forbidden", status: 403, since: 0 } }, inCall: 0, now: 1 })
    assert.strictEqual(denied.state, "red")
    assert.match(denied.fix ?? "", /Presence\.ReadWrite\.All/)
    const throttled = { waiting: 5, retrying: 1, failing: { message: "setPresence for x: TooManyRequests", status: 429, since: 0 } }
    assert.strictEqual(pbxToTeamsLight({ source: "presence", missingApi: [], watches: live, health: throttled, inCall: 0, now: writesRedAfterMillis - 1 }).state, "amber")
    assert.strictEqual(pbxToTeamsLight({ source: "presence", missingApi: [], watches: live, health: throttled, inCall: 0, now: writesRedAfterMillis }).state, "red")
  })

  it("amber: users the PBX refused (with what to grant), users waiting for their PBX, nobody to watch yet", () => {
    const refused = pbxToTeamsLight({ source: "presence", missingApi: [], watches: [...live, watch(3, "refused", "unknown user")], health: ok, inCall: 0, now: 0 })
    assert.deepStrictEqual([refused.state, refused.reason], ["amber", "the PBX refused to watch 1 users (u3: unknown user)"])
    assert.match(refused.fix ?? "", /On the phone/)
    assert.strictEqual(pbxToTeamsLight({ source: "presence", missingApi: [], watches: [...live, watch(4, "waiting")], health: ok, inCall: 0, now: 0 }).state, "amber")
    assert.strictEqual(pbxToTeamsLight({ source: "presence", missingApi: [], watches: [], health: ok, inCall: 0, now: 0 }).state, "amber")
  })
})
