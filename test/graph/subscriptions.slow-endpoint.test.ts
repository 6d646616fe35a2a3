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

/** A simulator with one user, subscribed by `tech1` to POST to `url`; `change` sets the user's presence. */
const subscribedTo = (url: string, delivery: Record<string, number>) =>
  Effect.gen(function*() {
    const sim = yield* startSimulator({ users: 1, accounts: 1, delivery })
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
    const waitFor = (done: (view: Effect.Success<ReturnType<typeof simSubscriptions>>) => boolean) =>
      simSubscriptions(sim).pipe(Effect.filterOrFail(done), Effect.retry(Schedule.spaced("20 millis")))
    const endpoints = (view: unknown) =>
      (view as { endpoints: Array<{ url: string; posts: number; slow: number; failures: number; state: string }> }).endpoints
    return { sim, waitFor, endpoints }
  })

describe("simulator endpoint measurement", () => {
  it.live("an endpoint answering slower than the slow threshold gets its notifications dropped", () =>
    Effect.gen(function*() {
      const url = yield* slowEndpoint(120)
      const { sim, waitFor, endpoints } = yield* subscribedTo(url, { slowMillis: 40, minSamples: 1, retries: 0 })
      yield* sim.setPresence(simUserId(1), { availability: "Busy", activity: "Busy" })
      const measured = yield* waitFor((view) => view.delivery.posts >= 1)
      assert.strictEqual(measured.delivery.posts, 1)
      yield* sim.setPresence(simUserId(1), { availability: "Away", activity: "Away" })
      const view = yield* waitFor((v) => v.delivery.itemsDropped >= 1)
      assert.deepStrictEqual(endpoints(view).map((e) => [e.url, e.slow, e.state]), [[`${url}/notify`, 1, "dropped"]])
      assert.strictEqual(view.delivery.posts, 1)
    }).pipe(Effect.scoped))

  it.live("slow answers count only once the endpoint has had enough POSTs: before, its notifications are delivered", () =>
    Effect.gen(function*() {
      const url = yield* slowEndpoint(120)
      const { sim, waitFor, endpoints } = yield* subscribedTo(url, { slowMillis: 40, minSamples: 3, retries: 0 })
      for (const [index, activity] of (["Busy", "Away", "Busy"] as const).entries()) {
        yield* sim.setPresence(simUserId(1), { availability: activity, activity })
        yield* waitFor((view) => view.delivery.itemsDelivered >= index + 1)
      }
      // Three POSTs, all slow: from now on the endpoint is judged, and dropped.
      yield* sim.setPresence(simUserId(1), { availability: "Away", activity: "Away" })
      const view = yield* waitFor((v) => v.delivery.itemsDropped >= 1)
      assert.deepStrictEqual(endpoints(view).map((e) => [e.posts, e.slow, e.state]), [[3, 3, "dropped"]])
      assert.strictEqual(view.delivery.itemsDelivered, 3)
    }).pipe(Effect.scoped))

  it.live("a POST answered after Graph's client timeout is not delivered: it is sent again, then given up", () =>
    Effect.gen(function*() {
      const url = yield* slowEndpoint(400)
      const { sim, waitFor, endpoints } = yield* subscribedTo(url, { answerTimeoutMillis: 100, retries: 1, retryBaseMillis: 20 })
      yield* sim.setPresence(simUserId(1), { availability: "Busy", activity: "Busy" })
      const view = yield* waitFor((v) => v.delivery.itemsDropped >= 1)
      assert.strictEqual(view.delivery.posts, 2)
      assert.strictEqual(view.delivery.itemsDelivered, 0)
      assert.deepStrictEqual(endpoints(view).map((e) => [e.posts, e.failures, e.state]), [[2, 2, "ok"]])
    }).pipe(Effect.scoped))
})
