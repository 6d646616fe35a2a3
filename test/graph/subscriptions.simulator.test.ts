import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted, Schema, SubscriptionRef } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { accountRef, AppCredentialRef, type CredentialRef } from "../../src/graph/client/GraphSettings.ts"
import { presenceResource } from "../../src/graph/subscriptions/SubscriptionApi.ts"
import { DUPLICATE_PRESENCE_MESSAGE } from "../../src/simulators/graph/SimSubscriptions.ts"
import { buildGraph, settingsFor } from "./harness.ts"
import { tempDir } from "../support/tempDir.ts"
import { control, firstRunThenStop, ids, simSubscriptions, startConnector, startSimulator, startWebhook } from "./subscriptionsHarness.ts"

const Created = Schema.Struct({ id: Schema.String, expirationDateTime: Schema.String, clientState: Schema.NullOr(Schema.String) })

const setup = (users: number) =>
  Effect.gen(function*() {
    const sim = yield* startSimulator({ users, accounts: 2 })
    const webhook = yield* startWebhook(sim, yield* tempDir)
    const settings = settingsFor(sim, {
      accounts: [1, 2].map((i) => ({
        name: `tech${i}`,
        username: `tech${i}@contoso.com`,
        flow: "password" as const,
        password: Redacted.make(`pw-${i}`)
      }))
    })
    const { graph } = yield* buildGraph(settings, { retry: { maxRetries: 0 } })
    const body = (resource: string, minutes: number, overrides: Record<string, unknown> = {}) => ({
      changeType: resource === "/users" ? "updated,deleted" : "updated",
      notificationUrl: webhook.baseUrl + webhook.settings.notificationPath,
      lifecycleNotificationUrl: webhook.baseUrl + webhook.settings.lifecyclePath,
      resource,
      expirationDateTime: new Date(Date.now() + minutes * 60_000).toISOString(),
      clientState: "state",
      ...overrides
    })
    const create = (credential: CredentialRef, payload: object) =>
      graph.execute({ method: "POST", url: "/v1.0/subscriptions", credential, body: payload, response: Created }).pipe(
        Effect.map((s) => ({ status: 201, id: s.id, code: "", message: "" })),
        Effect.catchTag("GraphError", (e) => Effect.succeed({ status: e.status, id: "", code: e.code, message: e.message }))
      )
    const call = (method: "PATCH" | "DELETE" | "POST", url: string, credential: CredentialRef, payload?: object) =>
      graph.executeEmpty({ method, url, credential, ...(payload !== undefined ? { body: payload } : {}) }).pipe(
        Effect.as(200),
        Effect.catchTag("GraphError", (e) => Effect.succeed(e.status))
      )
    return { sim, webhook, body, create, call }
  })

describe("Graph simulator: subscription rules", () => {
  it.live("enforces handshake, expiry limits, 650 ids, one presence subscription per delegated user, app-only presence and 404", () =>
    Effect.gen(function*() {
      const { sim, body, create, call } = yield* setup(700)
      const tech1 = accountRef("tech1")

      const unreachable = yield* create(tech1, body(presenceResource(ids(2)), 30, { notificationUrl: `${sim.url}/nowhere` }))
      assert.deepStrictEqual([unreachable.status, unreachable.code], [400, "ValidationError"])
      const tooLong = yield* create(tech1, body(presenceResource(ids(2)), 61))
      assert.deepStrictEqual([tooLong.status, tooLong.message], [400, "Subscription expiration can only be 60 minutes in the future."])
      const tooMany = yield* create(tech1, body(presenceResource(ids(651)), 30))
      assert.strictEqual(tooMany.status, 400)
      const appOnly = yield* create(AppCredentialRef, body(presenceResource(ids(2)), 30))
      assert.strictEqual(appOnly.status, 403)

      const first = yield* create(tech1, body(presenceResource(ids(650)), 60))
      assert.strictEqual(first.status, 201)
      const second = yield* create(tech1, body(presenceResource(ids(1)), 60))
      assert.deepStrictEqual([second.status, second.code, second.message], [409, "ExtensionError", DUPLICATE_PRESENCE_MESSAGE])
      const otherAccount = yield* create(accountRef("tech2"), body(presenceResource(ids(1)), 60))
      assert.strictEqual(otherAccount.status, 201)

      const users = yield* create(AppCredentialRef, body("/users", 41_760))
      assert.strictEqual(users.status, 201)
      const usersTooLong = yield* create(AppCredentialRef, body("/users", 41_761 + 5))
      assert.strictEqual(usersTooLong.status, 400)

      assert.strictEqual(yield* call("PATCH", `/v1.0/subscriptions/${first.id}`, tech1, { expirationDateTime: new Date(Date.now() + 59 * 60_000).toISOString() }), 200)
      assert.strictEqual(yield* call("PATCH", `/v1.0/subscriptions/${first.id}`, tech1, { expirationDateTime: new Date(Date.now() + 90 * 60_000).toISOString() }), 400)
      assert.strictEqual(yield* call("POST", `/v1.0/subscriptions/${first.id}/reauthorize`, tech1), 200)
      assert.strictEqual(yield* call("PATCH", "/v1.0/subscriptions/00000000-0000-0000-0000-000000000000", tech1, { expirationDateTime: new Date().toISOString() }), 404)

      // early expiry through the control API: the subscription vanishes, renewals get 404
      assert.strictEqual((yield* control(sim, `/${otherAccount.id}/expire`)).status, 200)
      assert.strictEqual(yield* call("PATCH", `/v1.0/subscriptions/${otherAccount.id}`, accountRef("tech2"), { expirationDateTime: new Date(Date.now() + 30 * 60_000).toISOString() }), 404)
      assert.strictEqual(yield* call("DELETE", `/v1.0/subscriptions/${first.id}`, tech1), 200)
      assert.strictEqual(yield* call("DELETE", `/v1.0/subscriptions/${first.id}`, tech1), 404)
      const view = yield* simSubscriptions(sim)
      assert.deepStrictEqual([view.counters.live, view.counters.deleted, view.counters.expired], [1, 1, 1])
    }).pipe(Effect.scoped))

  it.live("a stale subscription of the same account (409) is found, deleted and the creation retried", () =>
    Effect.gen(function*() {
      const { sim, dataDir, webhook, state: firstState } = yield* firstRunThenStop(3)
      const orphan = firstState.shards[0]!.subscriptionId
      // the state file is lost: the old subscription is now an orphan the connector does not know
      yield* Effect.promise(() => fs.rm(path.join(dataDir, "subscriptions.json")))

      const second = yield* startConnector(sim, webhook, { accounts: 1 })
      yield* second.manager!.setDesiredUsers(ids(3))
      const state = yield* SubscriptionRef.get(second.manager!.state)
      assert.strictEqual(state.shards[0]!.status, "active")
      assert.notStrictEqual(state.shards[0]!.subscriptionId, orphan)
      const view = yield* simSubscriptions(sim)
      const presence = view.subscriptions.filter((s) => s.kind === "presence")
      assert.deepStrictEqual(presence.map((s) => s.id), [state.shards[0]!.subscriptionId])
      assert.isAtLeast(view.counters.deleted, 1)
    }).pipe(Effect.scoped))
})
