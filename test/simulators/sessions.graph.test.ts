/**
 * The Graph simulator's presence writes over real sockets, as Learn documents them: setPresence accepts the five
 * documented pairs only (400 otherwise), an expirationDuration from PT5M to PT4H, the application's id as sessionId;
 * clearPresence answers 404 without a session; sessions combine DoNotDisturb > Busy > Available > Away, a status
 * picked by hand wins while any session exists; a change of what Graph shows (only that) is handed on for
 * notifications; reads and writes share the application's presence limit.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { generateUsers, GraphSimulator, type GraphSimulatorHandle } from "../../src/simulators/graph/GraphSimulator.ts"

const tenantId = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
const clientId = "22553876-f5ab-4529-bffb-cfe50aa89f87"
const writerId = "33333333-4444-5555-6666-777777777777"
const users = generateUsers(2)
const user = users[0]!.id!

const start = (limit?: number) =>
  GraphSimulator.make({
    tenantId,
    clientId,
    clientSecrets: [{ value: "main-secret" }],
    extraApps: [{ clientId: writerId, clientSecrets: [{ value: "writer-secret" }] }],
    users,
    ...(limit !== undefined ? { presenceRequestsPerWindow: limit } : {})
  })

const tokenFor = (sim: GraphSimulatorHandle, id: string, secret: string) =>
  Effect.promise(async () => {
    const response = await fetch(`${sim.url}/${tenantId}/oauth2/v2.0/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "client_credentials", client_id: id, client_secret: secret, scope: "https://graph.microsoft.com/.default" })
    })
    return ((await response.json()) as { access_token: string }).access_token
  })

const post = (sim: GraphSimulatorHandle, token: string, path: string, body: unknown) =>
  Effect.promise(async () => {
    const response = await fetch(`${sim.url}/v1.0${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body)
    })
    const text = await response.text()
    return { status: response.status, body: text === "" ? null : JSON.parse(text) as { error?: { code: string; message: string } } | null }
  })

const shows = (sim: GraphSimulatorHandle) => {
  const presence = sim.state.getPresence(user)!
  return `${presence.availability}/${presence.activity}`
}

describe("Graph simulator: presence sessions", () => {
  it.live("setPresence: the documented pairs, the expiry range and the app's own id; clearPresence 404 without a session", () =>
    Effect.scoped(Effect.gen(function*() {
      const sim = yield* start()
      const token = yield* tokenFor(sim, clientId, "main-secret")
      const set = (body: Record<string, unknown>) => post(sim, token, `/users/${user}/presence/setPresence`, { sessionId: clientId, ...body })
      for (const [availability, activity] of [["Available", "Available"], ["Busy", "InACall"], ["Busy", "InAConferenceCall"], ["Away", "Away"], ["DoNotDisturb", "Presenting"]]) {
        assert.strictEqual((yield* set({ availability, activity })).status, 200, `${availability}/${activity}`)
      }
      for (const [availability, activity] of [["Busy", "Busy"], ["DoNotDisturb", "DoNotDisturb"], ["Available", "InACall"], ["Offline", "OffWork"], ["Busy", "InAMeeting"]]) {
        const refused = yield* set({ availability, activity })
        assert.strictEqual(refused.status, 400, `${availability}/${activity}`)
        assert.strictEqual(refused.body?.error?.code, "InvalidArgument")
      }
      for (const duration of ["PT4M", "PT4H1M", "PT5H", "soon"]) {
        const refused = yield* set({ availability: "Busy", activity: "InACall", expirationDuration: duration })
        assert.strictEqual(refused.status, 400, duration)
      }
      for (const duration of ["PT5M", "PT1H", "PT4H"]) {
        assert.strictEqual((yield* set({ availability: "Busy", activity: "InACall", expirationDuration: duration })).status, 200, duration)
      }
      assert.strictEqual((yield* post(sim, token, `/users/${user}/presence/setPresence`, { sessionId: writerId, availability: "Busy", activity: "InACall" })).status, 400, "another app's id")
      assert.strictEqual((yield* post(sim, token, `/users/nobody/presence/setPresence`, { sessionId: clientId, availability: "Busy", activity: "InACall" })).status, 404)
      assert.strictEqual((yield* post(sim, token, `/users/${user}/presence/clearPresence`, { sessionId: clientId })).status, 200)
      const again = yield* post(sim, token, `/users/${user}/presence/clearPresence`, { sessionId: clientId })
      assert.strictEqual(again.status, 404)
      assert.deepStrictEqual(sim.sessionLog().map((c) => c.status).filter((s) => s === 200).length, 9)
    })))

  it.live("sessions combine DoNotDisturb > Busy > Available > Away; a status picked by hand wins; only what Graph shows is notified", () =>
    Effect.scoped(Effect.gen(function*() {
      const sim = yield* start()
      const main = yield* tokenFor(sim, clientId, "main-secret")
      const writer = yield* tokenFor(sim, writerId, "writer-secret")
      const changes: Array<string> = []
      const stop = sim.state.onPresenceChange((p) => {
        if (p.id === user) changes.push(`${p.availability}/${p.activity}`)
      })
      yield* Effect.addFinalizer(() => Effect.sync(stop))
      const published = Effect.sync(() => [...changes])
      yield* sim.setPresence(user, { availability: "Away", activity: "Away" })
      yield* post(sim, writer, `/users/${user}/presence/setPresence`, { sessionId: writerId, availability: "Available", activity: "Available" })
      assert.strictEqual(shows(sim), "Available/Available", "Available > Away")
      yield* post(sim, main, `/users/${user}/presence/setPresence`, { sessionId: clientId, availability: "Busy", activity: "InACall" })
      assert.strictEqual(shows(sim), "Busy/InACall", "Busy > Available")
      // A refresh that changes nothing is not a change.
      yield* post(sim, main, `/users/${user}/presence/setPresence`, { sessionId: clientId, availability: "Busy", activity: "InACall" })
      yield* post(sim, writer, `/users/${user}/presence/setPresence`, { sessionId: writerId, availability: "DoNotDisturb", activity: "Presenting" })
      assert.strictEqual(shows(sim), "DoNotDisturb/Presenting", "DoNotDisturb > Busy")
      yield* post(sim, writer, `/users/${user}/presence/clearPresence`, { sessionId: writerId })
      assert.strictEqual(shows(sim), "Busy/InACall")
      // Picked by hand: it wins over every session, and the session's end leaves it.
      assert.strictEqual((yield* post(sim, writer, `/users/${user}/presence/setUserPreferredPresence`, { availability: "Away", activity: "Away" })).status, 200)
      assert.strictEqual(shows(sim), "Away/Away")
      assert.strictEqual((yield* post(sim, writer, `/users/${user}/presence/setUserPreferredPresence`, { availability: "Busy", activity: "InACall" })).status, 400, "not a preferred pair")
      yield* post(sim, main, `/users/${user}/presence/clearPresence`, { sessionId: clientId })
      assert.strictEqual(shows(sim), "Away/Away")
      assert.strictEqual((yield* post(sim, writer, `/users/${user}/presence/clearUserPreferredPresence`, {})).status, 200)
      assert.strictEqual(shows(sim), "Away/Away", "the client's own Away again")
      yield* sim.setPresence(user, { availability: "Offline", activity: "Offline" })
      yield* sim.setPreferredPresence(user, { availability: "DoNotDisturb", activity: "DoNotDisturb" })
      assert.strictEqual(shows(sim), "Offline/Offline", "a preferred presence needs a session")
      yield* post(sim, main, `/users/${user}/presence/setPresence`, { sessionId: clientId, availability: "Busy", activity: "InACall" })
      assert.strictEqual(shows(sim), "DoNotDisturb/DoNotDisturb")
      assert.deepStrictEqual(yield* published, [
        "Away/Away",
        "Available/Available",
        "Busy/InACall",
        "DoNotDisturb/Presenting",
        "Busy/InACall",
        "Away/Away",
        "Offline/Offline",
        "DoNotDisturb/DoNotDisturb"
      ])
    })))

  it.effect("an Available session fades (AvailableInactive, then Away) and any session ends at its expiry (TestClock)", () =>
    Effect.scoped(Effect.gen(function*() {
      const sim = yield* start()
      const token = yield* tokenFor(sim, clientId, "main-secret")
      yield* post(sim, token, `/users/${user}/presence/setPresence`, { sessionId: clientId, availability: "Available", activity: "Available", expirationDuration: "PT1H" })
      assert.strictEqual(shows(sim), "Available/Available")
      yield* TestClock.adjust("5 minutes")
      assert.strictEqual(shows(sim), "Available/AvailableInactive")
      yield* TestClock.adjust("5 minutes")
      assert.strictEqual(shows(sim), "Away/Away")
      yield* TestClock.adjust("50 minutes")
      assert.strictEqual(shows(sim), "Offline/Offline")
      const fresh = yield* tokenFor(sim, clientId, "main-secret")
      assert.strictEqual((yield* post(sim, fresh, `/users/${user}/presence/clearPresence`, { sessionId: clientId })).status, 404)
    })))

  it.live("presence reads and writes share the application's limit; another application has its own", () =>
    Effect.scoped(Effect.gen(function*() {
      const sim = yield* start(3)
      const main = yield* tokenFor(sim, clientId, "main-secret")
      const writer = yield* tokenFor(sim, writerId, "writer-secret")
      assert.strictEqual((yield* post(sim, main, "/communications/getPresencesByUserId", { ids: [user] })).status, 200)
      assert.strictEqual((yield* post(sim, main, `/users/${user}/presence/setPresence`, { sessionId: clientId, availability: "Busy", activity: "InACall" })).status, 200)
      assert.strictEqual((yield* post(sim, main, `/users/${user}/presence/clearPresence`, { sessionId: clientId })).status, 200)
      const throttled = yield* post(sim, main, `/users/${user}/presence/setPresence`, { sessionId: clientId, availability: "Busy", activity: "InACall" })
      assert.strictEqual(throttled.status, 429)
      assert.strictEqual((yield* post(sim, writer, `/users/${user}/presence/setPresence`, { sessionId: writerId, availability: "Busy", activity: "InACall" })).status, 200)
    })))
})

