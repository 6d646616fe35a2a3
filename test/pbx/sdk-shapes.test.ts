/**
 * The PBX simulator sends the messages innovaphone's SDK documents, with the members it documents
 * (test/fixtures/conformance/innovaphone-sdk-messages.json): a bare app service on a real socket logs in the simulated
 * PBX and drives PbxApi presence monitoring, and every message the PBX sends is compared with the fixture.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { readFileSync } from "node:fs"
import type { AddressInfo } from "node:net"
import { WebSocketServer } from "ws"
import { PbxSimulator } from "../../src/simulators/pbx/PbxSimulator.ts"
import { allLoggedIn, makeUsers, password, startConnector } from "./harness.ts"

interface Documented {
  readonly members: Record<string, unknown>
  readonly optional?: ReadonlyArray<string>
}
const fixture: { readonly fromPbx: Record<string, Documented> } = JSON.parse(
  readFileSync(new URL("../fixtures/conformance/innovaphone-sdk-messages.json", import.meta.url), "utf8")
)

type Message = Record<string, unknown>

/** The message's members are the documented ones: all required present, nothing undocumented (src is the app's echo). */
const assertDocumented = (message: Message) => {
  const documented = fixture.fromPbx[String(message["mt"])]
  assert.isDefined(documented, `${String(message["mt"])} is documented`)
  const required = Object.keys(documented!.members)
  const allowed = new Set([...required, ...(documented!.optional ?? []), "src"])
  for (const key of required) assert.isTrue(key in message, `${String(message["mt"])} has ${key}`)
  for (const key of Object.keys(message)) assert.isTrue(allowed.has(key), `${String(message["mt"])} member ${key} is documented`)
  for (const [key, value] of Object.entries(documented!.members)) {
    if (key === "mt" || key === "api") assert.strictEqual(message[key], value)
    else if (value === "boolean") assert.isBoolean(message[key], key)
    else if (value === "Info" || value === "object") assert.isObject(message[key], key)
    else if (value === "hexstring") assert.match(String(message[key]), /^[0-9a-f]*$/, key)
    else if (Array.isArray(value)) assert.isArray(message[key], key)
    else if (typeof value === "string") assert.isString(message[key], key)
  }
  const presence = message["presence"]
  if (Array.isArray(presence)) {
    for (const entry of presence) assert.deepStrictEqual(Object.keys(entry as object).sort(), ["activity", "contact", "note", "status"])
  }
}

/** A bare app service: accepts the simulated PBX, answers the handshake, records what the PBX sends. */
const appService = Effect.acquireRelease(
  Effect.promise(() => {
    const server = new WebSocketServer({ port: 0, host: "127.0.0.1" })
    return new Promise<WebSocketServer>((resolve) => server.once("listening", () => resolve(server)))
  }),
  (server) => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
).pipe(Effect.flatMap((server) =>
  Effect.gen(function*() {
    const received: Array<Message> = []
    const waiting: Array<{ readonly ready: () => Message | undefined; readonly done: Deferred.Deferred<Message> }> = []
    const socket = yield* Deferred.make<import("ws").WebSocket>()
    server.on("connection", (ws) => {
      Effect.runSync(Deferred.succeed(socket, ws))
      ws.on("message", (data) => {
        const message = JSON.parse(data.toString()) as Message
        received.push(message)
        if (message["mt"] === "AppChallenge") ws.send(JSON.stringify({ mt: "AppChallengeResult", challenge: "1234567890123456" }))
        if (message["mt"] === "AppLogin") ws.send(JSON.stringify({ mt: "AppLoginResult", ok: true }))
        if (message["mt"] === "AppInfo") ws.send(JSON.stringify({ mt: "AppInfoResult", info: { hidden: true, apis: {} } }))
        for (const waiter of [...waiting]) {
          const found = waiter.ready()
          if (found !== undefined) {
            waiting.splice(waiting.indexOf(waiter), 1)
            Effect.runSync(Deferred.succeed(waiter.done, found))
          }
        }
      })
    })
    /** The `occurrence`-th message (1 = first) matching `predicate`, once it has arrived. */
    const next = (predicate: (m: Message) => boolean, occurrence = 1) =>
      Effect.gen(function*() {
        const ready = () => received.filter(predicate)[occurrence - 1]
        const found = ready()
        if (found !== undefined) return found
        const done = yield* Deferred.make<Message>()
        waiting.push({ ready, done })
        return yield* Deferred.await(done)
      })
    const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/example.com/teams-presence`
    return { url, received, next, socket: Deferred.await(socket) }
  })
))

const mt = (name: string, src?: string) => (message: Message) => message["mt"] === name && (src === undefined || message["src"] === src)

describe("PBX simulator messages against the innovaphone SDK", () => {
  it.live("handshake, PbxInfo, AppInfo and presence monitoring carry exactly the documented members", () =>
    Effect.gen(function*() {
      const app = yield* appService
      const [user] = makeUsers("s", 1, "pbx-master")
      const sim = yield* PbxSimulator.make({
        connectUrl: app.url,
        domain: "example.com",
        pbxs: [{ name: "pbx-master", isMaster: true, password, lics: 1, appObject: "teams-presence", users: [{ ...user!, e164: "201" }] }]
      })
      const appInfo = yield* app.next(mt("AppInfo"))
      assert.strictEqual(appInfo["app"], "teams-presence")
      yield* sim.waitFor(() => sim.peek.status()[0]!.appInfoResults.length > 0 ? true : undefined)
      const ws = yield* app.socket
      const send = (message: Message) => ws.send(JSON.stringify(message))

      send({ api: "PbxApi", mt: "SubscribePresence", src: "watch", num: "201" })
      const state = yield* app.next(mt("PresenceState", "watch"))
      assert.deepStrictEqual([state["up"], state["sip"], state["num"], state["email"]], [true, user!.h323, "201", user!.emails![0]])
      yield* app.next(mt("PresenceUpdate", "watch"))

      send({ api: "PbxApi", mt: "SetPresence", src: "set-1", guid: user!.guid, contact: "teams:", activity: "busy", note: "" })
      yield* app.next(mt("SetPresenceResult", "set-1"))
      const changed = yield* app.next(mt("PresenceUpdate", "watch"), 2)
      const newest = (changed["presence"] as ReadonlyArray<Message>)[0]
      assert.deepStrictEqual(newest, { contact: "teams:", status: "open", activity: "busy", note: "" })

      send({ api: "PbxApi", mt: "UnsubscribePresence", src: "watch", num: "201" })
      yield* app.next(mt("UnsubscribePresenceResult", "watch"))
      const updatesBefore = app.received.filter(mt("PresenceUpdate", "watch")).length
      send({ api: "PbxApi", mt: "SetPresence", src: "set-2", guid: user!.guid, contact: "teams:", activity: "away", note: "" })
      send({ api: "PbxApi", mt: "SetPresence", src: "set-3", guid: user!.guid, contact: "teams:", activity: "", note: "" })
      // Frames arrive in order: had the monitor still been on, its PresenceUpdate would have come before set-3's answer.
      yield* app.next(mt("SetPresenceResult", "set-3"))
      assert.strictEqual(app.received.filter(mt("PresenceUpdate", "watch")).length, updatesBefore)

      for (const message of app.received) assertDocumented(message)
      assert.includeMembers(app.received.map((message) => String(message["mt"])), [
        "AppChallenge",
        "AppLogin",
        "PbxInfo",
        "AppInfo",
        "SubscribePresenceResult",
        "PresenceState",
        "PresenceUpdate",
        "SetPresenceResult",
        "UnsubscribePresenceResult"
      ])
    }).pipe(Effect.scoped))

  it.live("the connector answers the PBX's AppInfo with AppInfoResult {info: {hidden, apis}}", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const sim = yield* PbxSimulator.make({
        connectUrl: connector.url,
        domain: "example.com",
        pbxs: [{ name: "pbx-master", isMaster: true, password, lics: 1, appObject: "teams-presence", users: makeUsers("a", 1, "pbx-master") }]
      })
      yield* connector.waitStates(allLoggedIn(["pbx-master"]))
      const [answer] = yield* sim.waitFor(() => {
        const results = sim.peek.status()[0]!.appInfoResults
        return results.length > 0 ? results : undefined
      })
      assert.deepStrictEqual(answer, { mt: "AppInfoResult", info: { hidden: true, apis: {} } })
    }).pipe(Effect.scoped))
})
