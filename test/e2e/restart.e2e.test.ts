/**
 * A restart with the files store (the embedded demo: Graph simulator → connector → PBX simulator): the connector
 * keeps what the PBXs confirmed (src/state/files/ConfirmedFile.ts) and after the restart writes only the users whose
 * presence changed meanwhile, not every user again.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { DemoHandle } from "../../src/demo/Demo.ts"
import { startTestDemo, statusOf } from "../support/demo.ts"
import { teamsEntry } from "../support/pbxPresence.ts"
import { until } from "../support/waiting.ts"

const password = "restart-admin-password"
const users = 12

const allGreen = (demo: DemoHandle) =>
  until("all lights green", Effect.map(statusOf(demo, password), (s) => Object.values(s.lights).every((l) => l.state === "green") ? s : undefined))

const guidOf = (demo: DemoHandle, n: number) =>
  Effect.map(demo.pbx.users, (all) => all.find((u) => (u.emails ?? []).includes(`user${n}@contoso.com`))!.guid)

const entryIs = (demo: DemoHandle, guid: string, activity: string) =>
  until(`${guid} shows "${activity}"`, Effect.map(demo.pbx.presence(guid), (list) => (teamsEntry(list)?.activity === activity ? true : undefined)))

describe("restart with the files store", () => {
  it.live("after a restart only the users whose presence changed are written again", () =>
    Effect.scoped(Effect.gen(function*() {
      const demo = yield* startTestDemo(password, { userCount: users })
      yield* allGreen(demo)
      const first = yield* guidOf(demo, 1)
      const second = yield* guidOf(demo, 2)
      yield* demo.graph.setPresence(demo.teamsUserIds[0]!, { availability: "Busy", activity: "Busy" })
      yield* entryIs(demo, first, "busy")
      // Every user was written once by the first process.
      const writtenBefore = yield* until("every user written once", Effect.map(demo.pbx.setPresenceLog, (log) =>
        new Set(log.map((r) => r.guid)).size >= users ? log.length : undefined))

      yield* demo.stopConnector
      yield* demo.graph.setPresence(demo.teamsUserIds[1]!, { availability: "Away", activity: "Away" })
      yield* demo.restartConnector
      yield* allGreen(demo)
      yield* entryIs(demo, second, "away")

      const after = (yield* demo.pbx.setPresenceLog).slice(writtenBefore)
      assert.deepStrictEqual(after.map((r) => [r.guid, r.activity]), [[second, "away"]], "only the changed user is written again")
      // The user who stayed busy is still shown busy (the PBX kept it).
      assert.strictEqual(teamsEntry(yield* demo.pbx.presence(first))?.activity, "busy")
    })))
})
