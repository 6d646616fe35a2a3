/**
 * The whole product over real sockets: Graph simulator → connector (rich push notifications) → PBX simulator
 * (master + slave). Every Teams activity ends as the mapped PBX activity on the connector's contact; users added or
 * removed on either side are picked up; a user without a licence is never written.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { DemoHandle } from "../../src/demo/Demo.ts"
import { teamsEntry } from "../support/pbxPresence.ts"
import { until } from "../support/waiting.ts"
import { startTestDemo, statusOf } from "../support/demo.ts"

const password = "e2e-admin-password"

// The seed's table, written out independently of the implementation ("" = cleared: our entry shows available).
const expected: Array<[activity: string, availability: string, pbx: string]> = [
  ["Available", "Available", ""],
  ["Away", "Away", "away"],
  ["BeRightBack", "BeRightBack", "away"],
  ["Busy", "Busy", "busy"],
  ["DoNotDisturb", "DoNotDisturb", "dnd"],
  ["InACall", "Busy", "on-the-phone"],
  ["InAConferenceCall", "Busy", "on-the-phone"],
  ["Inactive", "Away", ""],
  ["InAMeeting", "Busy", "meeting"],
  ["Offline", "Offline", ""],
  ["OffWork", "Offline", ""],
  ["OutOfOffice", "Away", "away"],
  ["PresenceUnknown", "PresenceUnknown", ""],
  ["Presenting", "Busy", "on-the-phone"],
  ["UrgentInterruptionsOnly", "DoNotDisturb", "dnd"]
]

const status = (demo: DemoHandle) => statusOf(demo, password)

/** The connector's entry in the user's presence list, as phones would see it. */
const teamsEntryOf = (demo: DemoHandle, guid: string) => Effect.map(demo.pbx.presence(guid), teamsEntry)

const guidOf = (demo: DemoHandle, email: string) =>
  Effect.map(demo.pbx.users, (users) => users.find((u) => (u.emails ?? []).includes(email))?.guid)

const start = Effect.gen(function*() {
  const demo = yield* startTestDemo(password, { userCount: 20 })
  yield* until("all lights green", Effect.map(status(demo), (s) => Object.values(s.lights).every((l) => l.state === "green") ? s : undefined))
  return demo
})

describe("connector end to end", () => {
  it.live("each of the 15 Teams activities ends as the mapped PBX activity on the teams: contact", () =>
    Effect.scoped(Effect.gen(function*() {
      const demo = yield* start
      // The rich-notification certificate is on the status page, valid for about two years.
      const certificate = yield* until("the certificate on the status page", Effect.map(status(demo), (s) => s.certificate))
      assert.isAbove(certificate.notAfter, Date.now() + 700 * 24 * 3600_000)
      // Every user starts Offline → cleared; first make each one busy so a later "clear" is a visible change.
      for (let i = 0; i < expected.length; i++) {
        yield* demo.graph.setPresence(demo.teamsUserIds[i]!, { availability: "Busy", activity: "Busy" })
      }
      for (let i = 0; i < expected.length; i++) {
        const guid = (yield* guidOf(demo, `user${i + 1}@contoso.com`))!
        yield* until(`user${i + 1} busy`, Effect.map(teamsEntryOf(demo, guid), (e) => e?.activity === "busy" ? e : undefined))
      }
      for (let i = 0; i < expected.length; i++) {
        const [activity, availability] = expected[i]!
        yield* demo.graph.setPresence(demo.teamsUserIds[i]!, { availability, activity })
      }
      for (let i = 0; i < expected.length; i++) {
        const [activity, , pbx] = expected[i]!
        const guid = (yield* guidOf(demo, `user${i + 1}@contoso.com`))!
        const entry = yield* until(
          `${activity} → "${pbx}"`,
          Effect.map(teamsEntryOf(demo, guid), (e) => e !== undefined && e.activity === pbx ? e : undefined)
        )
        assert.strictEqual(entry.activity, pbx, activity)
        // Our entry is the newest: it is what phones and myApps show.
        const list = yield* demo.pbx.presence(guid)
        assert.strictEqual(list[0]?.contact, "teams:")
      }
      // A user at the slave was written on the slave's connection.
      const log = yield* demo.pbx.setPresenceLog
      const user2 = (yield* guidOf(demo, "user2@contoso.com"))!
      const atSlave = (yield* demo.pbx.users).find((u) => u.guid === user2)?.loc
      assert.isTrue(log.filter((r) => r.guid === user2).every((r) => r.pbx === atSlave))
    })))

  it.live("users added and removed in Teams or in the PBX are picked up; an unlicensed user is never written", () =>
    Effect.scoped(Effect.gen(function*() {
      const demo = yield* start

      // Added in the PBX and in Teams: a new pair is matched, subscribed and written.
      yield* demo.pbx.upsertUser({ guid: "new00000000000000000000000000001", h323: "newbie", cn: "New Bie", emails: ["newbie@contoso.com"], apps: ["teams-presence"] })
      const added = yield* demo.graph.addUser({ displayName: "New Bie", userPrincipalName: "newbie@contoso.com", mail: "newbie@contoso.com", teams: true })
      yield* until("the new user is synchronised", Effect.map(status(demo), (s) => s.users.find((u) => u.teamsId === added.id && u.licensed)))
      yield* until("the new user's presence subscription", Effect.gen(function*() {
        yield* demo.graph.setPresence(added.id, { availability: "DoNotDisturb", activity: "DoNotDisturb" })
        const entry = yield* teamsEntryOf(demo, "new00000000000000000000000000001")
        return entry?.activity === "dnd" ? entry : undefined
      }))

      // Unlicensed: a matched PBX user whose apps do not include the connector is never written.
      yield* demo.pbx.upsertUser({ guid: "nolicence000000000000000000000001", h323: "nolic", cn: "No Licence", emails: ["nolic@contoso.com"], apps: ["users"] })
      const unlicensed = yield* demo.graph.addUser({ displayName: "No Licence", userPrincipalName: "nolic@contoso.com", mail: "nolic@contoso.com", teams: true })
      yield* until("the unlicensed user is listed", Effect.map(status(demo), (s) => s.unlicensed.find((u) => u.name.startsWith("No Licence"))))
      yield* demo.graph.setPresence(unlicensed.id, { availability: "Busy", activity: "InAMeeting" })
      // A licensed user's change made after it proves the notification round trip has happened.
      yield* demo.graph.setPresence(added.id, { availability: "Busy", activity: "InACall" })
      yield* until("the licensed change", Effect.map(teamsEntryOf(demo, "new00000000000000000000000000001"), (e) => e?.activity === "on-the-phone" ? e : undefined))
      const log = yield* demo.pbx.setPresenceLog
      assert.deepStrictEqual(log.filter((r) => r.guid === "nolicence000000000000000000000001"), [])

      // Removed in Teams: the presence the connector set is cleared, and the user leaves the table.
      yield* demo.graph.removeUser(added.id)
      yield* until("cleared after removal in Teams", Effect.map(teamsEntryOf(demo, "new00000000000000000000000000001"), (e) => e?.activity === "" ? e : undefined))
      yield* until("removed from the status", Effect.map(status(demo), (s) => s.users.some((u) => u.teamsId === added.id) ? undefined : s))

      // Removed in the PBX: the pair leaves the plan.
      const guid3 = (yield* guidOf(demo, "user3@contoso.com"))!
      yield* demo.pbx.removeUser(guid3)
      yield* until("removed PBX user unmatched", Effect.map(status(demo), (s) => s.users.some((u) => u.pbxGuid === guid3) ? undefined : s))
      const before = (yield* demo.pbx.setPresenceLog).length
      yield* demo.graph.setPresence(demo.teamsUserIds[2]!, { availability: "Away", activity: "Away" })
      yield* demo.graph.setPresence(demo.teamsUserIds[3]!, { availability: "Away", activity: "Away" })
      const guid4 = (yield* guidOf(demo, "user4@contoso.com"))!
      yield* until("user4 away", Effect.map(teamsEntryOf(demo, guid4), (e) => e?.activity === "away" ? e : undefined))
      const after = (yield* demo.pbx.setPresenceLog).slice(before)
      assert.deepStrictEqual(after.filter((r) => r.guid === guid3), [])
    })), 60_000)

  it.live("a user who moves to another PBX gets the presence again on that PBX's connection", () =>
    Effect.scoped(Effect.gen(function*() {
      const demo = yield* start
      const user = (yield* demo.pbx.users).find((u) => (u.emails ?? []).includes("user1@contoso.com"))!
      assert.strictEqual(user.loc, "pbx-master")
      yield* demo.graph.setPresence(demo.teamsUserIds[0]!, { availability: "Busy", activity: "InAMeeting" })
      yield* until("meeting on the master", Effect.map(demo.pbx.setPresenceLog, (log) => log.find((r) => r.guid === user.guid && r.activity === "meeting" && r.pbx === "pbx-master")))
      yield* demo.pbx.upsertUser({ ...user, loc: "pbx-slave" })
      const moved = yield* until("meeting written again on the slave", Effect.map(demo.pbx.setPresenceLog, (log) => log.find((r) => r.guid === user.guid && r.activity === "meeting" && r.pbx === "pbx-slave")))
      assert.strictEqual(moved.contact, "teams:")
    })))
})
