/**
 * Orderly shutdown: with shutdown.clearPresences the connector clears every Teams presence it set and delivers those
 * writes before it stops; without it, the presences stay as they were.
 */
import { assert, describe, it } from "@effect/vitest"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Redacted } from "effect"
import { startDemo, type DemoHandle } from "../../src/connector/Demo.ts"
import { until } from "../support/waiting.ts"

const teamsActivity = (demo: DemoHandle, guid: string) =>
  Effect.map(demo.pbx.presence(guid), (list) => list.find((entry) => entry.contact === "teams:")?.activity)

const scenario = (clearPresencesOnShutdown: boolean) =>
  Effect.gen(function*() {
    const demo = yield* startDemo({
      port: 0,
      userCount: 6,
      changeEverySeconds: 0,
      clearPresencesOnShutdown,
      adminPassword: Redacted.make("pw"),
      dataDir: mkdtempSync(join(tmpdir(), "tpc-shutdown-"))
    })
    const users = yield* demo.pbx.users
    const guids = users.map((u) => u.guid)
    yield* until("every user written once", Effect.map(demo.pbx.setPresenceLog, (log) => guids.every((g) => log.some((r) => r.guid === g)) ? true : undefined))
    for (const id of demo.teamsUserIds) yield* demo.graph.setPresence(id, { availability: "Busy", activity: "InAMeeting" })
    for (const guid of guids) yield* until(`${guid} in a meeting`, Effect.map(teamsActivity(demo, guid), (a) => (a === "meeting" ? a : undefined)))
    yield* demo.stopConnector
    return yield* Effect.forEach(guids, (guid) => teamsActivity(demo, guid))
  })

describe("shutdown", () => {
  it.live("clearPresences: every presence the connector set is cleared before it stops", () =>
    Effect.scoped(Effect.gen(function*() {
      const after = yield* scenario(true)
      assert.deepStrictEqual(after, after.map(() => ""))
    })))

  it.live("by default the presences stay as they were", () =>
    Effect.scoped(Effect.gen(function*() {
      const after = yield* scenario(false)
      assert.deepStrictEqual(after, after.map(() => "meeting"))
    })))
})
