/**
 * Orderly shutdown: with shutdown.clearPresences the connector clears every Teams presence it set and delivers those
 * writes before it stops; without it, the presences stay as they were.
 */
import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { Effect, Redacted } from "effect"
import { startDemo, type DemoHandle } from "../../src/demo/Demo.ts"
import { teamsActivity } from "../support/pbxPresence.ts"
import { until } from "../support/waiting.ts"
import { makeTempDir } from "../support/tempDir.ts"

const liveSubscriptions = (demo: DemoHandle) =>
  Effect.promise(async () =>
    ((await (await fetch(demo.graph.url + "/_sim/subscriptions")).json()) as { counters: { live: number; deleted: number } }).counters
  )

const scenario = (clearPresencesOnShutdown: boolean) =>
  Effect.gen(function*() {
    const demo = yield* startDemo({
      port: 0,
      userCount: 6,
      changeEverySeconds: 0,
      clearPresencesOnShutdown,
      deleteSubscriptionsOnShutdown: clearPresencesOnShutdown,
      adminPassword: Redacted.make("pw"),
      dataDir: yield* makeTempDir("tpc-shutdown-")
    })
    // The people of the table: its waiting queue and trunk are never written.
    const users = (yield* demo.pbx.users).filter((u) => u.pseudo === undefined)
    const guids = users.map((u) => u.guid)
    yield* until("every user written once", Effect.map(demo.pbx.setPresenceLog, (log) => guids.every((g) => log.some((r) => r.guid === g)) ? true : undefined))
    for (const id of demo.teamsUserIds) yield* demo.graph.setPresence(id, { availability: "Busy", activity: "InAMeeting" })
    for (const guid of guids) yield* until(`${guid} in a meeting`, Effect.map(teamsActivity(demo, guid), (a) => (a === "meeting" ? a : undefined)))
    const before = yield* liveSubscriptions(demo)
    yield* demo.stopConnector
    const activities = yield* Effect.forEach(guids, (guid) => teamsActivity(demo, guid))
    return { activities, before, after: yield* liveSubscriptions(demo) }
  })

describe("shutdown", () => {
  it.live("clearPresences and deleteSubscriptionsOnShutdown: presences cleared, subscriptions deleted before it stops", () =>
    Effect.scoped(Effect.gen(function*() {
      const { activities, before, after } = yield* scenario(true)
      assert.deepStrictEqual(activities, activities.map(() => ""))
      assert.strictEqual(before.live, 2) // the presence shard and the users subscription
      assert.strictEqual(after.live, 0)
    })))

  it.live("by default presences and subscriptions stay (a restart adopts the subscriptions)", () =>
    Effect.scoped(Effect.gen(function*() {
      const { activities, before, after } = yield* scenario(false)
      assert.deepStrictEqual(activities, activities.map(() => "meeting"))
      assert.strictEqual(before.live, 2)
      assert.strictEqual(after.live, 2)
    })))
})
