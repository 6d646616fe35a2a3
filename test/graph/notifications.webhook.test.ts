import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric, Redacted, Stream } from "effect"
import * as jose from "jose"
import { notificationsRejected } from "../../src/domain/Metrics.ts"
import { collect, firstWhere } from "../support/streams.ts"
import { buildPushSource, emptyPresenceReader } from "./harness.ts"
import { APP_ID, post, richWebhook, TENANT, type WebhookServerKind } from "./notificationsHarness.ts"
import { splitFromBytes } from "../../src/graph/notifications/JsonBody.ts"

const rejected = (reason: string) =>
  Metric.value(Metric.withAttributes(notificationsRejected, { reason })).pipe(Effect.map((state) => Number(state.count)))

/** The webhook with rich items; every item is decrypted here, however many arrive at once (the flood fallback: flood.fallback.test.ts). */
const makeSetup = (maxBodyBytes: number, server: WebhookServerKind = "node") =>
  Effect.map(richWebhook({ maxBodyBytes, floodLatencyBudgetMillis: 0 }, server), (webhook) => ({
    ...webhook,
    richItem: (userId: string, presence: object, overrides: Record<string, unknown> = {}) =>
      webhook.richItem(userId, { id: userId, ...presence }, overrides)
  }))

const setup = makeSetup(64 * 1024)

describe("notification webhook (real sockets)", () => {
  it.live("answers the validation handshake with the decoded token as text/plain", () =>
    Effect.gen(function*() {
      const { url, lifecycleUrl } = yield* setup
      for (const target of [url, lifecycleUrl]) {
        const answer = yield* post(`${target}?validationToken=${encodeURIComponent("Validation: Testing client application reachability <>&")}`, "")
        assert.strictEqual(answer.status, 200)
        assert.match(answer.contentType ?? "", /^text\/plain/)
        assert.strictEqual(answer.text, "Validation: Testing client application reachability <>&")
      }
    }).pipe(Effect.scoped))

  // The POST taken before effect's server (the connector's own server) and on the route (any other server, or tracing on).
  it.live.each(["node", "routes"] as const)("delivers a rich presence as a decrypted typed presence; rejects and counts forged, tampered, foreign and stale items (%s)", (server) =>
    Effect.gen(function*() {
      const { context, inbox, jwks, richItem, url } = yield* makeSetup(64 * 1024, server)
      // The inbox hands over every verified item in order; the presence source, the one owner of ordering, drops the
      // older one. Every user named below is served, so a forged item that got through would show as a change.
      const handedOver = yield* collect(inbox.presences, 3)
      const source = yield* buildPushSource(Layer.merge(Layer.succeedContext(context), emptyPresenceReader))
      yield* source.initialSync(["forged", "tampered", "wrong-state", "foreign", "u-1", "u-2"])
      const changes = yield* collect(source.changes, 2)
      const before = {
        clientState: yield* rejected("client_state"),
        unknown: yield* rejected("unknown_subscription"),
        hmac: yield* rejected("hmac"),
        token: yield* rejected("validation_token"),
        malformed: yield* rejected("malformed"),
        tooLarge: yield* rejected("too_large"),
        stale: yield* rejected("stale")
      }
      const goodToken = yield* jwks.validationToken(APP_ID, TENANT)

      // forged validation token: signed by a key that is not in the JWKS
      const { privateKey } = yield* Effect.promise(() => jose.generateKeyPair("RS256"))
      const forged = yield* Effect.promise(() =>
        new jose.SignJWT({ appid: "0bf30f3b-4a52-48df-9a82-234910c4a086" }).setProtectedHeader({ alg: "RS256", kid: "sim-graph-notifications" })
          .setAudience(APP_ID).setIssuer(`https://sts.windows.net/${TENANT}/`).setIssuedAt().setExpirationTime("1h").sign(privateKey)
      )
      assert.strictEqual((yield* post(url, { value: [richItem("forged", { availability: "Busy", activity: "Busy" })], validationTokens: [forged] })).status, 202)

      // tampered data: HMAC mismatch
      const tampered = richItem("tampered", { availability: "Busy", activity: "Busy" })
      const data = Buffer.from(tampered.encryptedContent.data, "base64")
      data[data.length - 1] = data[data.length - 1]! ^ 0xff
      tampered.encryptedContent = { ...tampered.encryptedContent, data: data.toString("base64") }
      // wrong clientState and unknown subscription: refused before queueing
      const wrongState = richItem("wrong-state", { availability: "Busy", activity: "Busy" }, { clientState: "guess" })
      const foreign = richItem("foreign", { availability: "Busy", activity: "Busy" }, { subscriptionId: "sub-unknown" })
      assert.strictEqual((yield* post(url, { value: [tampered, wrongState, foreign], validationTokens: [goodToken] })).status, 202)

      // a good one, then an older sequence number for the same user, then the newest
      const good = richItem("u-1", { availability: "Busy", activity: "InACall", sequenceNumber: "C0002" })
      const older = richItem("u-1", { availability: "Available", activity: "Available", sequenceNumber: "C0001" })
      const other = richItem("u-2", { availability: "Away", activity: "Away", sequenceNumber: "C0001" })
      assert.strictEqual((yield* post(url, { value: [good, older], validationTokens: [goodToken] })).status, 202)
      assert.strictEqual((yield* post(url, { value: [other], validationTokens: [goodToken] })).status, 202)

      // malformed JSON and bodies over the limit are 400
      assert.strictEqual((yield* post(url, "{not json")).status, 400)
      assert.strictEqual((yield* post(url, { value: "x" })).status, 400)
      assert.strictEqual((yield* post(url, { value: [], padding: "x".repeat(70 * 1024) })).status, 400)
      // the same without Content-Length (chunked): the limit holds while the body is read
      const chunked = yield* Effect.promise(async () => {
        const big = new TextEncoder().encode(JSON.stringify({ value: [], padding: "x".repeat(70 * 1024) }))
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            for (let i = 0; i < big.length; i += 8192) controller.enqueue(big.subarray(i, i + 8192))
            controller.close()
          }
        })
        const response = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json" }, duplex: "half" } as RequestInit)
        await response.text()
        return response.status
      })
      assert.strictEqual(chunked, 400)

      const activities = (all: ReadonlyArray<{ readonly userId: string; readonly presence: { readonly activity: unknown } }>) =>
        all.map((p) => ({ userId: p.userId, activity: p.presence.activity }))
      assert.deepStrictEqual(activities(yield* handedOver), [
        { userId: "u-1", activity: "InACall" },
        { userId: "u-1", activity: "Available" },
        { userId: "u-2", activity: "Away" }
      ])
      assert.deepStrictEqual(activities(yield* changes), [{ userId: "u-1", activity: "InACall" }, { userId: "u-2", activity: "Away" }])
      assert.strictEqual((yield* rejected("validation_token")) - before.token, 1)
      assert.strictEqual((yield* rejected("hmac")) - before.hmac, 1)
      assert.strictEqual((yield* rejected("client_state")) - before.clientState, 1)
      assert.strictEqual((yield* rejected("unknown_subscription")) - before.unknown, 1)
      assert.strictEqual((yield* rejected("stale")) - before.stale, 1)
      assert.strictEqual((yield* rejected("malformed")) - before.malformed, 2)
      assert.strictEqual((yield* rejected("too_large")) - before.tooLarge, 2)
    }).pipe(Effect.scoped))

  it.live("accepts items of a subscription still being created by its clientState, and not after withdrawal", () =>
    Effect.gen(function*() {
      const { inbox, jwks, richItem, url } = yield* setup
      const token = yield* jwks.validationToken(APP_ID, TENANT)
      const got = yield* firstWhere(inbox.presences, () => true)
      const withdraw = yield* inbox.expect({ kind: "presence", key: "shard-1", clientState: Redacted.make("fresh-state") })
      const early = richItem("early", { availability: "Busy", activity: "Busy" }, { subscriptionId: "sub-new", clientState: "fresh-state" })
      assert.strictEqual((yield* post(url, { value: [early], validationTokens: [token] })).status, 202)
      assert.strictEqual((yield* got).userId, "early")
      yield* withdraw
      const before = yield* rejected("unknown_subscription")
      assert.strictEqual((yield* post(url, { value: [early], validationTokens: [token] })).status, 202)
      assert.strictEqual((yield* rejected("unknown_subscription")) - before, 1)
    }).pipe(Effect.scoped))

  it.live("refuses a large body that is not JSON or holds an item that is not a notification, and applies none of it", () =>
    Effect.gen(function*() {
      const { inbox, jwks, richItem, url } = yield* makeSetup(4 * 1024 * 1024)
      const token = yield* jwks.validationToken(APP_ID, TENANT)
      const got = yield* collect(inbox.presences.pipe(Stream.filter((p) => p.userId.startsWith("large-"))), 1)
      const items = Array.from({ length: 200 }, (_, i) => richItem(`large-${i}`, { availability: "Busy", activity: "Busy" }))
      const text = JSON.stringify({ value: items, validationTokens: [token] })
      assert.isAbove(text.length, 2 * splitFromBytes)
      const before = yield* rejected("malformed")
      // a stray comma between two items, a truncated body, and an item without its subscriptionId
      assert.strictEqual((yield* post(url, text.replace("},{", "},,{"))).status, 400)
      assert.strictEqual((yield* post(url, text.slice(0, -2))).status, 400)
      const { subscriptionId: _, ...withoutSubscription } = items[150]!
      assert.strictEqual((yield* post(url, { value: [...items.slice(0, 150), withoutSubscription], validationTokens: [token] })).status, 400)
      assert.strictEqual((yield* rejected("malformed")) - before, 3)
      // the same items well-formed: delivered
      assert.strictEqual((yield* post(url, text)).status, 202)
      assert.strictEqual((yield* got).length, 1)
    }).pipe(Effect.scoped))

  it.live("answers a burst of 2,000 rich items in milliseconds while the workers decrypt them", () =>
    Effect.gen(function*() {
      const { inbox, jwks, richItem, url } = yield* makeSetup(4 * 1024 * 1024)
      const token = yield* jwks.validationToken(APP_ID, TENANT)
      const all = yield* collect(inbox.presences.pipe(Stream.filter((p) => p.userId.startsWith("burst-"))), 2_000)
      const bodies = Array.from({ length: 4 }, (_, b) => ({
        value: Array.from({ length: 500 }, (_, i) => richItem(`burst-${b * 500 + i}`, { availability: "Busy", activity: "Busy" })),
        validationTokens: [token]
      }))
      const latencies: Array<number> = []
      for (const body of bodies) {
        const started = performance.now()
        assert.strictEqual((yield* post(url, body)).status, 202)
        latencies.push(performance.now() - started)
      }
      // each POST is answered without waiting for its ~0.5 s of RSA work; generous bound for loaded CI machines
      // (Graph's own limit is 3 s)
      for (const latency of latencies) assert.isBelow(latency, 1_500)
      assert.strictEqual((yield* all).length, 2_000)
    }).pipe(Effect.scoped))

  it.live("accepts lifecycle events only for own subscriptions", () =>
    Effect.gen(function*() {
      const { inbox, lifecycleUrl } = yield* setup
      const got = yield* firstWhere(inbox.lifecycle, () => true)
      const item = (clientState: string, lifecycleEvent: string) => ({
        subscriptionId: "sub-1",
        subscriptionExpirationDateTime: "2030-01-01T00:00:00Z",
        tenantId: TENANT,
        clientState,
        lifecycleEvent
      })
      assert.strictEqual((yield* post(lifecycleUrl, { value: [item("secret-state", "subscriptionRemoved or missed")] })).status, 400)
      assert.strictEqual((yield* post(lifecycleUrl, { value: [item("nope", "missed")] })).status, 202)
      assert.strictEqual((yield* post(lifecycleUrl, { value: [item("secret-state", "reauthorizationRequired")] })).status, 202)
      const signal = yield* got
      assert.strictEqual(`${signal.key}:${signal.event}`, "shard-0:reauthorizationRequired")
    }).pipe(Effect.scoped))
})
