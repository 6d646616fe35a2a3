/**
 * Against the Graph simulator: a presence subscription that expires early (the simulator's control API) is found gone
 * by the lookup between renewals and recreated, its users' presences read again; the simulator's GET answers like
 * Graph's (the subscription with its clientState, 404 once it is gone).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, SubscriptionRef } from "effect"
import { tempDir } from "../support/tempDir.ts"
import { control, simSubscriptions, startConnector, startPushed, startSimulator, startWebhook, stateWhere } from "./subscriptionsHarness.ts"

describe("subscription lookups against the simulator (real sockets)", () => {
  it.live("an early expiry on the Graph side is noticed by the next lookup and the subscription recreated", () =>
    Effect.gen(function*() {
      const { sim, manager } = yield* startPushed({ users: 2, accounts: 1, subscribe: 2, settings: { verifySeconds: 1 } })
      const before = yield* SubscriptionRef.get(manager.state)
      const live = (yield* simSubscriptions(sim)).subscriptions.find((s) => s.kind === "presence")!
      assert.strictEqual(before.shards[0]?.status, "active")

      assert.strictEqual((yield* control(sim, `/${live.id}/expire`)).status, 200)
      const after = yield* stateWhere(manager.state, (s) => s.shards[0]?.status === "active" && s.shards[0].subscriptionId !== live.id)
      assert.isDefined(after)
      const view = yield* simSubscriptions(sim)
      assert.strictEqual(view.counters.created, 3, "the users subscription, the presence one, and its replacement")
      assert.strictEqual(view.counters.expired, 1)
      assert.strictEqual(view.subscriptions.filter((s) => s.kind === "presence").length, 1)
    }).pipe(Effect.scoped))

  it.live("GET /subscriptions/{id} answers the subscription with its clientState, and 404 once it expired", () =>
    Effect.gen(function*() {
      const { sim } = yield* startPushed({ users: 1, accounts: 1, subscribe: 1 })
      const live = (yield* simSubscriptions(sim)).subscriptions.find((s) => s.kind === "presence")!
      const token = yield* Effect.promise(async () => {
        const form = new URLSearchParams({
          grant_type: "password",
          client_id: "12345678-1234-1234-1234-123456789abc",
          scope: "https://graph.microsoft.com/.default offline_access",
          username: "tech1@contoso.com",
          password: "pw-1"
        })
        const answer = await fetch(`${sim.url}/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee/oauth2/v2.0/token`, { method: "POST", body: form })
        return ((await answer.json()) as { access_token: string }).access_token
      })
      const get = () =>
        Effect.promise(async () => {
          const answer = await fetch(`${sim.url}/v1.0/subscriptions/${live.id}`, { headers: { authorization: `Bearer ${token}` } })
          return { status: answer.status, body: (await answer.json()) as Record<string, unknown> }
        })
      const found = yield* get()
      assert.strictEqual(found.status, 200)
      assert.strictEqual(found.body["id"], live.id)
      assert.match(String(found.body["@odata.context"]), /\$metadata#subscriptions\/\$entity$/)
      assert.isString(found.body["clientState"])
      assert.isAbove(String(found.body["clientState"]).length, 20)
      yield* control(sim, `/${live.id}/expire`)
      const gone = yield* get()
      assert.strictEqual(gone.status, 404)
      assert.strictEqual((gone.body["error"] as { code: string }).code, "ResourceNotFound")
    }).pipe(Effect.scoped))

  it.live("a users subscription whose creation failed is created again at the next lookup, not at the next renewal", () =>
    Effect.gen(function*() {
      const sim = yield* startSimulator({ users: 1, accounts: 1 })
      // Graph unavailable while the connector starts: creating the users subscription fails.
      yield* sim.faults.serverErrors(1_000_000)
      const webhook = yield* startWebhook(sim, yield* tempDir)
      const { manager } = yield* startConnector(sim, webhook, { accounts: 1, verifySeconds: 1 })
      const failed = yield* stateWhere(manager!.state, (s) => s.users.status === "error")
      assert.match(failed?.users.error ?? "", /creating the users subscription failed/)
      // Graph back: the next lookup (1 s here; usersRenewMinutes is 60) creates it.
      yield* sim.faults.serverErrors(0)
      const active = yield* stateWhere(manager!.state, (s) => s.users.status === "active")
      assert.isDefined(active?.users.subscriptionId)
      const view = yield* simSubscriptions(sim)
      assert.deepStrictEqual(view.subscriptions.map((s) => s.kind), ["users"])
    }).pipe(Effect.scoped))
})
