/**
 * PBX → Teams against Microsoft's published examples (test/fixtures/conformance/pbx-to-teams-samples.json): the
 * Graph simulator accepts each documented request as published, answers an expiration out of range as reported, and
 * the connector's own setPresence / clearPresence bodies have the documented members with their types.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Stream, SubscriptionRef } from "effect"
import { readFileSync } from "node:fs"
import { GraphClient, type GraphRequest } from "../../src/graph/client/GraphClient.ts"
import { AppCredentialRef } from "../../src/graph/client/GraphSettings.ts"
import { PresenceBudget } from "../../src/graph/sessions/PresenceBudget.ts"
import { PresenceSessions } from "../../src/graph/sessions/PresenceSessions.ts"
import { GraphSimulator } from "../../src/simulators/graph/GraphSimulator.ts"
import { tempDataDir } from "./harness.ts"
import { fileState } from "../support/state.ts"

interface Sample {
  readonly url: string
  readonly body: Record<string, unknown>
  readonly status: number
}
const fixture: {
  readonly graph: Record<string, Sample> & {
    readonly setPresence_expiration_out_of_range: { readonly request: Record<string, unknown>; readonly error: { code: string; message: string } }
  }
} = JSON.parse(readFileSync(new URL("../fixtures/conformance/pbx-to-teams-samples.json", import.meta.url), "utf8"))

const docAppId = "22553876-f5ab-4529-bffb-cfe50aa89f87"
const docUserId = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
const tenantId = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"

const samples = ["setPresence_request", "clearPresence_request", "setUserPreferredPresence_request"] as const

/** The member names and value types of a JSON object. */
const shape = (body: Record<string, unknown>) => Object.fromEntries(Object.entries(body).map(([key, value]) => [key, typeof value]))

describe("PBX → Teams: Graph conformance", () => {
  it.live("the simulator accepts the documented requests as published and refuses a short expiration as reported", () =>
    Effect.scoped(Effect.gen(function*() {
      // The docs' own application and user, so that the published bodies are sent unchanged.
      const sim = yield* GraphSimulator.make({
        tenantId,
        clientId: docAppId,
        clientSecrets: [{ value: "s" }],
        users: [{ id: docUserId, displayName: "Doc User" }]
      })
      const token = yield* Effect.promise(async () => {
        const response = await fetch(`${sim.url}/${tenantId}/oauth2/v2.0/token`, {
          method: "POST",
          body: new URLSearchParams({ grant_type: "client_credentials", client_id: docAppId, client_secret: "s", scope: "https://graph.microsoft.com/.default" })
        })
        return ((await response.json()) as { access_token: string }).access_token
      })
      const send = (url: string, body: unknown) =>
        Effect.promise(async () => {
          const response = await fetch(sim.url + new URL(url).pathname, {
            method: "POST",
            headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
            body: JSON.stringify(body)
          })
          const text = await response.text()
          return { status: response.status, body: text === "" ? null : JSON.parse(text) }
        })
      for (const name of samples) {
        const sample = fixture.graph[name]!
        assert.strictEqual((yield* send(sample.url, sample.body)).status, sample.status, name)
      }
      const outOfRange = fixture.graph.setPresence_expiration_out_of_range
      const refused = yield* send(fixture.graph.setPresence_request!.url, { sessionId: docAppId, ...outOfRange.request })
      assert.strictEqual(refused.status, 400)
      assert.deepInclude(refused.body.error, outOfRange.error)
    })))

  it.effect("the connector's setPresence and clearPresence bodies have the documented members and types", () =>
    Effect.gen(function*() {
      const sent: Array<GraphRequest> = []
      // A narrow fake below the writer: it records the requests and answers as Graph does (200, no body).
      const graph = Layer.succeed(GraphClient, GraphClient.of({
        execute: () => Effect.die("not used"),
        executeEmpty: (request) => Effect.sync(() => void sent.push(request))
      }))
      const context = yield* Layer.build(PresenceSessions.layer({
        sessionId: docAppId,
        credential: AppCredentialRef,
        availability: "Busy",
        activity: "InACall",
        expirationMinutes: 5,
        refreshMillis: 240_000,
        concurrency: 1,
        startupHoldMillis: 30_000
      }).pipe(Layer.provide(graph), Layer.provide(PresenceBudget.layer), Layer.provide(fileState(tempDataDir()))))
      const sessions = Context.get(context, PresenceSessions)
      yield* sessions.setInCall(docUserId, true)
      yield* Stream.runHead(Stream.filter(SubscriptionRef.changes(sessions.activeUsers), (active) => active.has(docUserId)))
      yield* sessions.setInCall(docUserId, false)
      yield* Stream.runHead(Stream.filter(SubscriptionRef.changes(sessions.activeUsers), (active) => active.size === 0))
      const [set, clear] = sent
      assert.strictEqual(set!.url, new URL(fixture.graph.setPresence_request!.url).pathname)
      assert.deepStrictEqual(shape(set!.body as Record<string, unknown>), shape(fixture.graph.setPresence_request!.body))
      assert.strictEqual((set!.body as Record<string, unknown>)["sessionId"], docAppId)
      assert.strictEqual(clear!.url, new URL(fixture.graph.clearPresence_request!.url).pathname)
      assert.deepStrictEqual(shape(clear!.body as Record<string, unknown>), shape(fixture.graph.clearPresence_request!.body))
      assert.deepStrictEqual([set!.method, clear!.method], ["POST", "POST"])
    }).pipe(Effect.scoped))
})
