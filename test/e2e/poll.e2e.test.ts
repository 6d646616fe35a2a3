/**
 * Poll-only mode end to end: no subscriptions and no webhook traffic, presences polled with the application
 * credential; the rest of the connector works the same.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { until } from "../support/waiting.ts"
import { teamsEntry } from "../support/pbxPresence.ts"
import { startTestDemo, statusOf } from "../support/demo.ts"

describe("poll-only mode", () => {
  it.live("lights green without subscriptions; a Teams change reaches the PBX within a poll interval", () =>
    Effect.scoped(Effect.gen(function*() {
      const demo = yield* startTestDemo("pw", { userCount: 8, mode: "poll", pollSeconds: 1 })
      const status = statusOf(demo, "pw")
      const green = yield* until("all lights green", Effect.map(status, (s) => Object.values(s.lights).every((l) => l.state === "green") ? s : undefined))
      assert.strictEqual(green.mode, "poll")
      assert.match(green.lights.presenceSubscription.reason, /poll-only/)
      assert.deepStrictEqual(green.shards, [])

      const guid = (yield* demo.pbx.users).find((u) => (u.emails ?? []).includes("user5@contoso.com"))!.guid
      const changedAt = Date.now()
      yield* demo.graph.setPresence(demo.teamsUserIds[4]!, { availability: "DoNotDisturb", activity: "Presenting" })
      yield* until("the polled change", Effect.map(demo.pbx.presence(guid), (list) => teamsEntry(list)?.activity === "on-the-phone" ? list : undefined))
      assert.isBelow(Date.now() - changedAt, 5_000)

      // No subscription was ever created in poll mode (the simulator counts every creation).
      const subscriptions = yield* Effect.promise(async () =>
        (await (await fetch(demo.graph.url + "/_sim/subscriptions")).json()) as { counters: { created: number; live: number } }
      )
      assert.deepStrictEqual([subscriptions.counters.created, subscriptions.counters.live], [0, 0])
    })))
})
