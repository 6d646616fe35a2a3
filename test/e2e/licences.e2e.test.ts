/**
 * Licences through the whole product over real sockets (Graph simulator → connector → PBX simulator):
 * - start-up: before the master PBX has logged in, nothing is concluded about licences — a stored presence
 *   subscription is adopted and renewed, never deleted;
 * - appRight against the real captures' AppLogin info (unlicensed, no service licences) serves every user;
 * - appLicence: a licence withdrawn between two renewals takes the user out of the subscription at the next renewal,
 *   and the user gets no further SetPresence.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { DemoHandle } from "../../src/demo/Demo.ts"
import { teamsActivity } from "../support/pbxPresence.ts"
import { until } from "../support/waiting.ts"
import { startTestDemo, statusOf } from "../support/demo.ts"

const password = "licences-admin-password"

const status = (demo: DemoHandle) => statusOf(demo, password)

const simSubscriptions = (demo: DemoHandle) =>
  Effect.promise(async () =>
    (await (await fetch(demo.graph.url + "/_sim/subscriptions")).json()) as {
      subscriptions: Array<{ id: string; kind: string; userCount: number; resource: string }>
      counters: { created: number; deleted: number; live: number }
    }
  )

const allGreen = (demo: DemoHandle) =>
  until("all lights green", Effect.map(status(demo), (s) => (Object.values(s.lights).every((l) => l.state === "green") ? s : undefined)))

const start = (options: { licensing?: "appRight" | "appLicence" }) =>
  startTestDemo(password, { userCount: 4, ...options })

describe("licences end to end", () => {
  it.live("appRight with the real captures' AppLogin info serves every user; a restart before the master logs in adopts the stored subscription", () =>
    Effect.scoped(Effect.gen(function*() {
      const demo = yield* start({})
      const first = yield* allGreen(demo)
      assert.deepStrictEqual(first.licensing, {
        mode: "appRight",
        name: "teams-presence",
        licensed: 4,
        unlicensed: 0,
        unknown: 0,
        unlicensedFlag: true
      })
      const stored = first.shards[0]!
      assert.isDefined(stored.key)
      const subscriptionId = (yield* simSubscriptions(demo)).subscriptions.find((s) => s.kind === "presence")!.id
      const before = (yield* simSubscriptions(demo)).counters

      // The PBXs go away and stay away; the connector restarts over the same data directory.
      yield* demo.pbx.drop("pbx-master", { reconnect: false })
      yield* demo.pbx.drop("pbx-slave", { reconnect: false })
      yield* demo.restartConnector
      const adopted = yield* until(
        "the stored presence subscription renewed",
        Effect.map(status(demo), (s) => (s.shards[0]?.lastRenewalAt !== undefined ? s : undefined))
      )
      assert.strictEqual(adopted.lights.masterPbx.state, "red")
      const during = yield* simSubscriptions(demo)
      assert.strictEqual(during.counters.deleted, before.deleted, "nothing deleted while licences are unknown")
      assert.strictEqual(during.counters.created, before.created, "nothing created either")
      assert.include(during.subscriptions.map((s) => s.id), subscriptionId)
      assert.strictEqual(during.subscriptions.find((s) => s.id === subscriptionId)!.userCount, 4)

      // The PBXs come back: the same subscription goes on, and presence flows.
      yield* demo.pbx.reconnect("pbx-master")
      yield* demo.pbx.reconnect("pbx-slave")
      yield* allGreen(demo)
      const guid = (yield* demo.pbx.users).find((u) => (u.emails ?? []).includes("user1@contoso.com"))!.guid
      yield* demo.graph.setPresence(demo.teamsUserIds[0]!, { availability: "Busy", activity: "InAMeeting" })
      yield* until("user1 in a meeting", Effect.map(teamsActivity(demo, guid), (a) => (a === "meeting" ? a : undefined)))
      const after = yield* simSubscriptions(demo)
      assert.strictEqual(after.counters.deleted, before.deleted)
      assert.include(after.subscriptions.map((s) => s.id), subscriptionId)
    })))

  it.live("appLicence: a licence withdrawn between two renewals leaves the subscription at the next renewal; no further SetPresence", () =>
    Effect.scoped(Effect.gen(function*() {
      const demo = yield* start({ licensing: "appLicence" })
      const ready = yield* allGreen(demo)
      assert.deepInclude(ready.licensing!, { mode: "appLicence", name: "App(teams-presence)", licensed: 4, unknown: 0 })
      assert.isAtLeast(demo.pbx.peek.checkAppLicLog().length, 4)
      const users = yield* demo.pbx.users
      const guidOf = (n: number) => users.find((u) => (u.emails ?? []).includes(`user${n}@contoso.com`))!.guid
      yield* demo.graph.setPresence(demo.teamsUserIds[2]!, { availability: "Busy", activity: "Busy" })
      yield* until("user3 busy", Effect.map(teamsActivity(demo, guidOf(3)), (a) => (a === "busy" ? a : undefined)))

      // The licence goes (as from a config template: no change to the user object, so nothing is pushed).
      yield* demo.pbx.setAppLicences(guidOf(3), [])
      yield* demo.renewPresence
      const renewed = yield* simSubscriptions(demo)
      assert.strictEqual(renewed.subscriptions.find((s) => s.kind === "presence")!.userCount, 3)
      assert.notInclude(renewed.subscriptions.find((s) => s.kind === "presence")!.resource, demo.teamsUserIds[2]!)
      const replanned = yield* until(
        "user3 listed as not licensed",
        Effect.map(status(demo), (s) => (s.licensing?.unlicensed === 1 ? s : undefined))
      )
      assert.match(replanned.unlicensed[0]!.reason, /no App\(teams-presence\) licence/)
      // The connector takes back the presence it set for that user, once.
      yield* until("user3's Teams presence cleared", Effect.map(teamsActivity(demo, guidOf(3)), (a) => (a === "" ? a : undefined)))
      const writesToUser3 = () => demo.pbx.peek.setPresenceLog().filter((r) => r.guid === guidOf(3)).length
      const settled = writesToUser3()

      // From now on: changes of user3 are not written; user1's still are (the marker that changes were processed).
      yield* demo.graph.setPresence(demo.teamsUserIds[2]!, { availability: "DoNotDisturb", activity: "Presenting" })
      yield* demo.graph.setPresence(demo.teamsUserIds[0]!, { availability: "Away", activity: "BeRightBack" })
      yield* until("user1 away", Effect.map(teamsActivity(demo, guidOf(1)), (a) => (a === "away" ? a : undefined)))
      yield* demo.renewPresence
      yield* demo.graph.setPresence(demo.teamsUserIds[0]!, { availability: "Busy", activity: "InACall" })
      yield* until("user1 on the phone", Effect.map(teamsActivity(demo, guidOf(1)), (a) => (a === "on-the-phone" ? a : undefined)))
      assert.strictEqual(writesToUser3(), settled, "no SetPresence for the unlicensed user")
      assert.strictEqual(yield* teamsActivity(demo, guidOf(3)), "")
    })))

  it.live("appLicence after a restart without PbxAdminApi: the light names the Admin checkmark, the stored subscription's users stay served", () =>
    Effect.scoped(Effect.gen(function*() {
      const demo = yield* start({ licensing: "appLicence" })
      yield* allGreen(demo)
      const subscriptionId = (yield* simSubscriptions(demo)).subscriptions.find((s) => s.kind === "presence")!.id
      const before = (yield* simSubscriptions(demo)).counters

      yield* demo.stopConnector
      yield* demo.pbx.setApis("pbx-master", ["PbxApi", "PbxTableUsers"])
      yield* demo.restartConnector
      const snapshot = yield* until(
        "the plan made without licence answers",
        Effect.map(status(demo), (s) => (s.licensing?.problem !== undefined && s.shards[0]?.lastRenewalAt !== undefined ? s : undefined))
      )
      assert.strictEqual(snapshot.lights.masterPbx.state, "red")
      assert.strictEqual(snapshot.lights.masterPbx.fix, "Set the Admin (PbxAdminApi) checkmark on the App object of pbx-master")
      assert.match(snapshot.licensing!.problem!.fix, /Admin \(PbxAdminApi\)/)
      assert.strictEqual(snapshot.licensing!.licensed, 4, "unknown is not unlicensed: the users the subscription holds stay served")
      const after = yield* simSubscriptions(demo)
      assert.strictEqual(after.counters.deleted, before.deleted)
      assert.strictEqual(after.subscriptions.find((s) => s.id === subscriptionId)?.userCount, 4)
      const guid = (yield* demo.pbx.users).find((u) => (u.emails ?? []).includes("user2@contoso.com"))!.guid
      yield* demo.graph.setPresence(demo.teamsUserIds[1]!, { availability: "Away", activity: "Away" })
      yield* until("user2 away", Effect.map(teamsActivity(demo, guid), (a) => (a === "away" ? a : undefined)))
    })))
})
