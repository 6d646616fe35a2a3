/**
 * Seeded fuzzing of everything the connector accepts from outside, against the embedded demo over real sockets:
 * 2,000 webhook requests (junk, forged notifications and lifecycle events, oversized values), 1,000 frames on the
 * logged-in master PBX's connection and 1,000 frames on unauthenticated PBX connections from many addresses.
 * Afterwards the connector still serves and still delivers presence, nothing forged was applied, and the log grew
 * by a bounded amount per rejected request.
 */
import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { Effect, Layer, Logger, Metric, Redacted } from "effect"
import * as fc from "fast-check"
import WebSocket from "ws"
import { startDemo } from "../../src/demo/Demo.ts"
import { notificationsReceived } from "../../src/domain/Metrics.ts"
import { teamsActivity } from "../support/pbxPresence.ts"
import { until } from "../support/waiting.ts"
import { makeTempDir } from "../support/tempDir.ts"

const seed = 19_2026
const webhookRequests = 2_000
const sessionFrames = 1_000
const loginFrames = 1_000

const longText = fc.string({ minLength: 2_000, maxLength: 40_000 })
const anyText = fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: "binary", maxLength: 80 }), longText)

/** Notification-shaped bodies whose subscriptionId is unknown or whose clientState is wrong. */
const forgedNotifications = (knownIds: ReadonlyArray<string>) =>
  fc.record({
    value: fc.array(
      fc.record({
        subscriptionId: fc.oneof(fc.constantFrom(...knownIds), anyText),
        clientState: fc.oneof(anyText, fc.constant(null)),
        changeType: fc.constantFrom("updated", "deleted", "created"),
        resource: fc.oneof(anyText, fc.uuid().map((id) => `communications/presences/${id}`)),
        resourceData: fc.option(fc.record({ id: fc.oneof(fc.uuid(), anyText) }), { nil: undefined }),
        encryptedContent: fc.option(
          fc.record({
            data: fc.base64String({ maxLength: 200 }),
            dataKey: fc.base64String({ maxLength: 400 }),
            dataSignature: fc.base64String({ maxLength: 60 }),
            encryptionCertificateId: anyText,
            encryptionCertificateThumbprint: anyText
          }),
          { nil: undefined }
        )
      }, { requiredKeys: ["subscriptionId", "changeType"] }),
      { minLength: 1, maxLength: 120 }
    ),
    validationTokens: fc.option(fc.array(anyText, { maxLength: 3 }), { nil: undefined })
  })

const forgedLifecycle = (knownIds: ReadonlyArray<string>) =>
  fc.record({
    value: fc.array(
      fc.record({
        subscriptionId: fc.oneof(fc.constantFrom(...knownIds), anyText),
        clientState: fc.oneof(anyText, fc.constant(null)),
        lifecycleEvent: fc.constantFrom("reauthorizationRequired", "subscriptionRemoved", "missed")
      }),
      { minLength: 1, maxLength: 20 }
    )
  })

const webhookCase = (knownIds: ReadonlyArray<string>) =>
  fc.oneof(
    fc.record({ lifecycle: fc.constant(false), body: fc.json() }),
    fc.record({ lifecycle: fc.constant(false), body: anyText }),
    fc.record({ lifecycle: fc.constant(false), body: forgedNotifications(knownIds).map((b) => JSON.stringify(b)) }),
    fc.record({ lifecycle: fc.constant(true), body: forgedLifecycle(knownIds).map((b) => JSON.stringify(b)) })
  )

/** Frames a PBX might send, broken in every way: text, JSON, known message types with nonsense, large ones. */
const frame = fc.oneof(
  anyText,
  fc.json(),
  fc.record({
    mt: fc.constantFrom("AppChallenge", "AppLogin", "PbxInfo", "AppInfo", "KeepAlive", "SetPresenceResult", "ReplicateNextResult", "Bogus"),
    api: fc.option(fc.constantFrom("PbxApi", "PbxAdminApi", "Other"), { nil: undefined }),
    src: fc.option(anyText, { nil: undefined }),
    digest: fc.option(fc.stringMatching(/^[0-9a-f]{64}$/), { nil: undefined }),
    info: fc.option(fc.object(), { nil: undefined })
  }).map((m) => JSON.stringify(m))
)

const post = (url: string, body: string) =>
  Effect.promise(() => fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body }).then((r) => r.status, () => 0))

/** One unauthenticated connection from `address`: sends its frames until the connector closes it. Returns frames sent. */
const junkConnection = (url: string, address: string, frames: ReadonlyArray<string>) =>
  Effect.callback<number>((resume) => {
    const socket = new WebSocket(url, { localAddress: address })
    let sent = 0
    const done = () => resume(Effect.succeed(sent))
    socket.on("open", () => {
      for (const text of frames) {
        if (socket.readyState !== WebSocket.OPEN) break
        socket.send(text)
        sent++
      }
      socket.close(1000)
    })
    socket.on("close", done)
    socket.on("unexpected-response", () => {
      socket.terminate()
      done()
    })
    socket.on("error", () => {})
  })

const received = Metric.value(notificationsReceived).pipe(Effect.map((s) => Number(s.count)))

describe("fuzzing the connector's inputs (seeded, real sockets)", () => {
  it.live("junk and forged input: the connector stays up, applies nothing forged, logs a bounded amount", () => {
    const lines: Array<string> = []
    const capture = Logger.map(Logger.formatJson, (line) => void lines.push(line))
    return Effect.gen(function*() {
      const demo = yield* startDemo({
        port: 0,
        userCount: 6,
        changeEverySeconds: 0,
        adminPassword: Redacted.make("fuzz-admin"),
        dataDir: yield* makeTempDir("tpc-fuzz-")
      })
      // The people of the table: its waiting queue and trunk are never written.
      const users = (yield* demo.pbx.users).filter((u) => u.pseudo === undefined)
      yield* until("every user written once", Effect.map(demo.pbx.setPresenceLog, (log) => users.every((u) => log.some((r) => r.guid === u.guid)) ? true : undefined), 30_000)
      const view = (yield* Effect.promise(() => fetch(`${demo.graph.url}/_sim/subscriptions`).then((r) => r.json()))) as { subscriptions: Array<{ id: string }> }
      const knownIds = view.subscriptions.map((s) => s.id)
      assert.isAbove(knownIds.length, 0)
      const writesBefore = (yield* demo.pbx.setPresenceLog).length
      const receivedBefore = yield* received
      const logBefore = lines.length

      // Webhook requests.
      const cases = fc.sample(webhookCase(knownIds), { seed, numRuns: webhookRequests })
      const statuses = new Map<number, number>()
      for (const c of cases) {
        const status = yield* post(`${demo.url}${c.lifecycle ? "/graph/lifecycle" : "/graph/notifications"}`, c.body)
        statuses.set(status, (statuses.get(status) ?? 0) + 1)
      }
      assert.isFalse(statuses.has(0) || statuses.has(500), JSON.stringify([...statuses]))
      // Frames on the logged-in master's connection: ignored, never closing it.
      const masterLogins = (yield* demo.pbx.status).find((s) => s.name === "pbx-master")!.logins
      for (const text of fc.sample(frame, { seed: seed + 1, numRuns: sessionFrames })) yield* demo.pbx.sendRaw("pbx-master", text)
      // Frames on unauthenticated connections, from 50 addresses.
      const loginCases = fc.sample(fc.array(frame, { minLength: 1, maxLength: 20 }), { seed: seed + 2, numRuns: 200 })
      let framesSent = 0
      for (let i = 0; framesSent < loginFrames && i < loginCases.length; i++) {
        framesSent += yield* junkConnection(demo.url.replace(/^http/, "ws") + "/pbx", `127.0.${1 + (i % 50)}.${10 + (i % 7)}`, loginCases[i]!)
      }
      assert.isAtLeast(framesSent, 300)

      // Still up: probes, the status API, the master's connection, and a real change reaches the PBX.
      assert.strictEqual(yield* Effect.promise(() => fetch(`${demo.url}/healthz`).then((r) => r.status)), 200)
      const master = (yield* demo.pbx.status).find((s) => s.name === "pbx-master")!
      assert.isTrue(master.connected)
      assert.strictEqual(master.logins, masterLogins, "the junk never closed the master's connection")
      // Nothing forged was applied: no item accepted, no write caused.
      assert.strictEqual((yield* received) - receivedBefore, 0)
      assert.strictEqual((yield* demo.pbx.setPresenceLog).length, writesBefore)
      const guid = users[0]!.guid
      const teamsId = demo.teamsUserIds[0]!
      yield* demo.graph.setPresence(teamsId, { availability: "Busy", activity: "InAMeeting" })
      yield* until("a real change written", Effect.map(teamsActivity(demo, guid), (a) => (a === "meeting" ? a : undefined)), 30_000)
      // A bounded log: repeats are summarised, values clipped.
      const fuzzLines = lines.slice(logBefore)
      const bytes = fuzzLines.reduce((n, line) => n + line.length, 0)
      const longest = Math.max(...fuzzLines.map((line) => line.length))
      assert.isBelow(longest, 2_500, "no line carries a whole request or frame")
      assert.isBelow(bytes / (webhookRequests + sessionFrames + framesSent), 100, `${fuzzLines.length} lines, ${bytes} bytes`)
    }).pipe(Effect.scoped, Effect.provide(Layer.mergeAll(Logger.layer([capture]))))
  }, 120_000)
})
