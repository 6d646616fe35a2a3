/**
 * Microsoft's Graph JavaScript client (@microsoft/microsoft-graph-client, docs/simulator-graph.md says why this one)
 * against the Graph simulator over HTTPS, with tokens from MSAL Node. The client is told the simulator's base URL and
 * that its host is a Graph host (`customHosts`, without which it sends no token to a host that is not Graph's), and
 * trusts the test CA process-wide (tlsHarness.ts); everything else is its default behaviour, retries included.
 */
import { ConfidentialClientApplication, PublicClientApplication } from "@azure/msal-node"
import { assert, describe, it } from "@effect/vitest"
import { Client, GraphError, PageIterator } from "@microsoft/microsoft-graph-client"
import { Clock, Effect } from "effect"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { type GraphSimulatorHandle, simUserId } from "../../src/simulators/graph/GraphSimulator.ts"
import { teamsServicePlanId } from "../../src/simulators/graph/SimState.ts"
import { clientId, clientSecret } from "./harness.ts"
import { msalAuthority, startTlsSimulator, technicalAccount } from "./tlsHarness.ts"

const graphDefault = "https://graph.microsoft.com/.default"

/** A Graph client whose tokens come from MSAL: app-only (client credentials) or the technical account (password). */
const graphClient = (sim: GraphSimulatorHandle, kind: "app" | "delegated") => {
  const confidential = new ConfidentialClientApplication({ auth: { clientId, clientSecret, ...msalAuthority(sim.url) } })
  const publicClient = new PublicClientApplication({ auth: { clientId, ...msalAuthority(sim.url) } })
  const getAccessToken = async () => {
    const result = kind === "app"
      ? await confidential.acquireTokenByClientCredential({ scopes: [graphDefault] })
      : await publicClient.acquireTokenByUsernamePassword({
        scopes: [graphDefault],
        username: technicalAccount.upn,
        password: technicalAccount.password
      })
    return result!.accessToken
  }
  return Client.initWithMiddleware({
    authProvider: { getAccessToken },
    baseUrl: `${sim.url}/`,
    customHosts: new Set([new URL(sim.url).hostname])
  })
}

const promise = <A>(run: () => Promise<A>) => Effect.promise(run)
const graphError = (run: () => Promise<unknown>) =>
  Effect.promise(() => run().then(() => undefined, (error: unknown) => error))

/** A notification endpoint that passes Graph's validation handshake (echoes validationToken as text/plain). */
const webhook = Effect.acquireRelease(
  Effect.promise(() => {
    const server = createServer((request, response) => {
      const token = new URL(request.url ?? "/", "http://127.0.0.1").searchParams.get("validationToken")
      response.writeHead(token === null ? 202 : 200, { "content-type": "text/plain" })
      response.end(token ?? "")
    })
    return new Promise<typeof server>((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)))
  }),
  (server) => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}/notifications`))

describe("@microsoft/microsoft-graph-client against the Graph simulator", () => {
  it.live("users: the page iterator follows @odata.nextLink to the end, resending ConsistencyLevel for the Teams filter", () =>
    Effect.gen(function*() {
      const { sim } = yield* startTlsSimulator({ users: 25 })
      yield* Effect.forEach([5, 10, 15, 20, 25], (n) => sim.setTeamsLicence(simUserId(n), false))
      const client = graphClient(sim, "app")

      const all: Array<string> = []
      const first = yield* promise(() => client.api("/users").select(["id", "displayName"]).top(7).get())
      assert.isString(first["@odata.nextLink"])
      yield* promise(() => new PageIterator(client, first, (user: { id: string }) => (all.push(user.id), true)).iterate())
      assert.deepStrictEqual(all.sort(), sim.state.listUsers().map((user) => user.id).sort())

      const licensed: Array<string> = []
      const headers = { ConsistencyLevel: "eventual" }
      const filtered = yield* promise(() =>
        client.api("/users")
          .headers(headers)
          .filter(`assignedPlans/any(a:a/servicePlanId eq ${teamsServicePlanId} and a/capabilityStatus eq 'Enabled')`)
          .count(true)
          .top(4)
          .get()
      )
      assert.strictEqual(filtered["@odata.count"], 21)
      yield* promise(() => new PageIterator(client, filtered, (user: { id: string }) => (licensed.push(user.id), true), { headers }).iterate())
      assert.strictEqual(licensed.length, 21)
      assert.notInclude(licensed, simUserId(5))
    }).pipe(Effect.scoped))

  it.live("getPresencesByUserId returns the presences the simulator holds", () =>
    Effect.gen(function*() {
      const { sim } = yield* startTlsSimulator({ users: 3 })
      yield* sim.setPresence(simUserId(2), { availability: "Busy", activity: "InACall" })
      const client = graphClient(sim, "app")
      const answer = yield* promise(() =>
        client.api("/communications/getPresencesByUserId").post({ ids: [simUserId(1), simUserId(2)] })
      )
      const byId = new Map((answer.value as Array<{ id: string; availability: string; activity: string }>).map((p) => [p.id, p]))
      assert.strictEqual(byId.size, 2)
      assert.strictEqual(byId.get(simUserId(2))?.availability, "Busy")
      assert.strictEqual(byId.get(simUserId(2))?.activity, "InACall")
    }).pipe(Effect.scoped))

  it.live("a presence subscription is created, renewed and deleted with a delegated token; refusals are GraphErrors with the simulator's code, status and request id", () =>
    Effect.gen(function*() {
      const { sim } = yield* startTlsSimulator({ users: 3 })
      const notificationUrl = yield* webhook
      const client = graphClient(sim, "delegated")
      const now = yield* Clock.currentTimeMillis
      const body = {
        changeType: "updated",
        notificationUrl,
        resource: `/communications/presences?$filter=id in ('${simUserId(1)}','${simUserId(2)}')`,
        expirationDateTime: new Date(now + 30 * 60_000).toISOString(),
        clientState: "conformance"
      }
      const created = yield* promise(() => client.api("/subscriptions").post(body))
      assert.isString(created.id)
      assert.strictEqual(created.resource, body.resource)

      const duplicate = yield* graphError(() => client.api("/subscriptions").post(body))
      assert.instanceOf(duplicate, GraphError)
      const conflict = duplicate as GraphError
      assert.strictEqual(conflict.statusCode, 409)
      assert.strictEqual(conflict.code, "ExtensionError")
      assert.isString(conflict.requestId)
      assert.strictEqual(conflict.requestId, conflict.headers?.get("request-id"))

      const renewedTo = new Date(now + 55 * 60_000).toISOString().replace(/\.\d{3}Z$/, "Z")
      const renewed = yield* promise(() => client.api(`/subscriptions/${created.id}`).patch({ expirationDateTime: renewedTo }))
      assert.strictEqual(renewed.expirationDateTime, renewedTo)

      yield* promise(() => client.api(`/subscriptions/${created.id}`).delete())
      const gone = yield* graphError(() => client.api(`/subscriptions/${created.id}`).get())
      assert.instanceOf(gone, GraphError)
      assert.strictEqual((gone as GraphError).statusCode, 404)
      assert.strictEqual((gone as GraphError).code, "ResourceNotFound")
      assert.strictEqual((gone as GraphError).requestId, (gone as GraphError).headers?.get("request-id"))
    }).pipe(Effect.scoped))
})
