/**
 * The presence subscription's expiry against a Graph whose clock is behind this machine's (the simulator's clock
 * control): the default stays inside Graph's 60-minute maximum; a request for exactly 60 minutes is refused, retried
 * once with a shorter expiry and logged.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger, SubscriptionRef } from "effect"
import { shorterExpiryMinutes } from "../../src/graph/subscriptions/SubscriptionExpiry.ts"
import { tempDir } from "../support/tempDir.ts"
import { control, ids, simSubscriptions, startConnector, startSimulator, startWebhook } from "./subscriptionsHarness.ts"

const withLogs = <A, E, R>(run: (lines: Array<string>) => Effect.Effect<A, E, R>) => {
  const lines: Array<string> = []
  const capture = Logger.make(({ message }) => void lines.push(Array.isArray(message) ? message.map(String).join(" ") : String(message)))
  return run(lines).pipe(Effect.provide(Logger.layer([capture])))
}

const minutesAhead = (expiresAt: number | undefined) => ((expiresAt ?? 0) - Date.now()) / 60_000

describe("presence subscription expiry and clock skew (Graph simulator, real sockets)", () => {
  it.live("the default expiry (58 min) is accepted by a Graph whose clock is 90 s behind, at creation and renewal", () =>
    withLogs((lines) =>
      Effect.gen(function*() {
        const sim = yield* startSimulator({ users: 2, accounts: 1 })
        assert.strictEqual((yield* control(sim, "/clock", { skewSeconds: -90 })).status, 200)
        const webhook = yield* startWebhook(sim, yield* tempDir)
        const { manager } = yield* startConnector(sim, webhook, { accounts: 1, includeResourceData: false })
        yield* manager!.setDesiredUsers(ids(2))
        yield* manager!.renewPresence
        const shard = (yield* SubscriptionRef.get(manager!.state)).shards[0]!
        assert.strictEqual(shard.status, "active")
        assert.approximately(minutesAhead(shard.expiresAt), 58, 0.5)
        assert.isFalse(lines.some((line) => line.includes("Graph refused")))
      }).pipe(Effect.scoped)
    ))

  it.live("exactly 60 minutes against a Graph 5 s behind: 400, one retry with a shorter expiry, logged; renewals likewise", () =>
    withLogs((lines) =>
      Effect.gen(function*() {
        const sim = yield* startSimulator({ users: 2, accounts: 1 })
        assert.strictEqual((yield* control(sim, "/clock", { skewSeconds: -5 })).status, 200)
        const webhook = yield* startWebhook(sim, yield* tempDir)
        const { manager } = yield* startConnector(sim, webhook, { accounts: 1, includeResourceData: false, presenceExpiryMinutes: 60 })
        yield* manager!.setDesiredUsers(ids(2))
        const created = (yield* SubscriptionRef.get(manager!.state)).shards[0]!
        assert.strictEqual(created.status, "active")
        const shorter = shorterExpiryMinutes(60, 10)
        assert.strictEqual(shorter, 30)
        assert.approximately(minutesAhead(created.expiresAt), shorter, 0.5)
        assert.strictEqual((yield* simSubscriptions(sim)).counters.created, 2) // presence + users
        const refused = lines.filter((line) => line.includes("Graph refused creating the presence subscription with an expiry of 60 min"))
        assert.strictEqual(refused.length, 1)
        assert.include(refused[0]!, "retrying once with 30 min")

        yield* manager!.renewPresence
        const renewed = (yield* SubscriptionRef.get(manager!.state)).shards[0]!
        assert.strictEqual(renewed.status, "active")
        assert.strictEqual(renewed.subscriptionId, created.subscriptionId)
        assert.strictEqual(lines.filter((line) => line.includes("Graph refused renewing")).length, 1)
      }).pipe(Effect.scoped)
    ))

  it("the retry's expiry is shorter than the first request and still outlasts the next renewal", () => {
    for (let expiry = 2; expiry <= 60; expiry++) {
      for (let renew = 1; renew < expiry; renew++) {
        const shorter = shorterExpiryMinutes(expiry, renew)
        assert.isBelow(shorter, expiry)
        if (renew + 5 < expiry) assert.isAtLeast(shorter, renew + 5)
      }
    }
  })
})
