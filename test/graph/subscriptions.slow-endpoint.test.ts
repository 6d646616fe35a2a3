import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted, Schedule, Schema } from "effect"
import * as http from "node:http"
import { accountRef } from "../../src/graph/client/GraphSettings.ts"
import { presenceResource } from "../../src/graph/subscriptions/SubscriptionApi.ts"
import { simUserId } from "../../src/simulators/graph/GraphSimulator.ts"
import { buildGraph, settingsFor } from "./harness.ts"
import { simSubscriptions, startSimulator } from "./subscriptionsHarness.ts"

/** An endpoint that passes the validation handshake at once but answers notifications after `delayMillis`. */
const slowEndpoint = (delayMillis: number) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<http.Server>((resolve) => {
        const server = http.createServer((request, response) => {
          const token = new URL(request.url ?? "/", "http://x").searchParams.get("validationToken")
          request.resume()
          if (token !== null) {
            response.writeHead(200, { "content-type": "text/plain" }).end(token)
            return
          }
          setTimeout(() => response.writeHead(202).end(), delayMillis)
        })
        server.listen(0, "127.0.0.1", () => resolve(server))
      })
    ),
    (server) => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
  ).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as { port: number }).port}`))

describe("simulator endpoint measurement", () => {
  it.live("an endpoint answering slower than the slow threshold gets its notifications dropped", () =>
    Effect.gen(function*() {
      const sim = yield* startSimulator({ users: 1, accounts: 1, delivery: { slowMillis: 40, retries: 0 } })
      const url = yield* slowEndpoint(120)
      const settings = settingsFor(sim, {
        accounts: [{ name: "tech1", username: "tech1@contoso.com", flow: "password", password: Redacted.make("pw-1") }]
      })
      const { graph } = yield* buildGraph(settings)
      yield* graph.execute({
        method: "POST",
        url: "/v1.0/subscriptions",
        credential: accountRef("tech1"),
        body: {
          changeType: "updated",
          notificationUrl: `${url}/notify`,
          resource: presenceResource([simUserId(1)]),
          expirationDateTime: new Date(Date.now() + 30 * 60_000).toISOString(),
          clientState: "x"
        },
        response: Schema.Struct({ id: Schema.String })
      })
      yield* sim.setPresence(simUserId(1), { availability: "Busy", activity: "Busy" })
      const measured = yield* simSubscriptions(sim).pipe(
        Effect.filterOrFail((view) => view.delivery.posts >= 1),
        Effect.retry(Schedule.spaced("20 millis"))
      )
      assert.strictEqual(measured.delivery.posts, 1)
      yield* sim.setPresence(simUserId(1), { availability: "Away", activity: "Away" })
      const view = yield* simSubscriptions(sim).pipe(
        Effect.filterOrFail((v) => v.delivery.itemsDropped >= 1),
        Effect.retry(Schedule.spaced("20 millis"))
      )
      const endpoints = (view as unknown as { endpoints: Array<{ url: string; slow: number; state: string }> }).endpoints
      assert.deepStrictEqual(endpoints.map((e) => [e.url, e.slow, e.state]), [[`${url}/notify`, 1, "dropped"]])
      assert.strictEqual(view.delivery.posts, 1)
    }).pipe(Effect.scoped))
})
