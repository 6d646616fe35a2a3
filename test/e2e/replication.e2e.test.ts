/**
 * Objects of the PBX's user table that are not people never reach the matching, even when a PBX sends them and even
 * when they carry a Teams user's e-mail address: the person is matched and written, the queue never.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { until } from "../support/waiting.ts"
import { teamsEntry } from "../support/pbxPresence.ts"
import { startTestDemo, statusOf } from "../support/demo.ts"

const password = "replication-admin-password"

describe("user table objects that are not people", () => {
  it.live("a waiting queue carrying user2's address is neither matched nor written; user2 is", () =>
    Effect.scoped(Effect.gen(function*() {
      const demo = yield* startTestDemo(password, { userCount: 3 })
      const status = statusOf(demo, password)
      const queue = { guid: "queue".padEnd(32, "9"), h323: "support", cn: "Support Queue", emails: ["user2@contoso.com"], pseudo: "waiting", loc: "pbx-master" }
      // A PBX that sends every object of the table, whatever the connector asks for. While the master is away the
      // queue is added and user1 renamed: the new name on the page shows that the reload has been planned.
      yield* demo.pbx.setReplicateAllObjects("pbx-master", true)
      yield* demo.pbx.drop("pbx-master", { reconnect: false })
      const user1 = (yield* demo.pbx.users).find((u) => (u.emails ?? []).includes("user1@contoso.com"))!
      yield* demo.pbx.upsertUser(queue, "pbx-master")
      yield* demo.pbx.upsertUser({ ...user1, h323: "user-one" })
      yield* demo.pbx.reconnect("pbx-master")
      const snapshot = yield* until(
        "the reloaded table planned",
        Effect.map(status, (s) => (s.users.some((u) => u.pbxName === "user-one") && s.lights.masterPbx.state === "green" ? s : undefined))
      )
      assert.strictEqual(snapshot.counts.matched, 3)
      assert.strictEqual(snapshot.counts.ambiguous, 0)
      assert.strictEqual(snapshot.counts.pbxUsers, 3, "the queue and the trunk are not users")
      assert.isFalse(snapshot.unmatched.some((u) => u.name.includes("Support Queue") || u.name.includes("Trunk")))

      const user2 = (yield* demo.pbx.users).find((u) => u.pseudo === undefined && (u.emails ?? []).includes("user2@contoso.com"))!
      yield* demo.graph.setPresence(demo.teamsUserIds[1]!, { availability: "DoNotDisturb", activity: "Presenting" })
      yield* until("user2 on the phone", Effect.map(demo.pbx.presence(user2.guid), (list) =>
        teamsEntry(list)?.activity === "on-the-phone" ? true : undefined))
      const toQueue = demo.pbx.peek.setPresenceLog().filter((r) => r.guid === queue.guid || r.sip === queue.h323)
      assert.deepStrictEqual(toQueue, [])
    })))
})
