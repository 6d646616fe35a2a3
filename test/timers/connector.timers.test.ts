/**
 * The connector's timers under TestClock: presence renewals every 10 minutes and the users subscription every 60, token
 * refresh ahead of expiry, and one failing shard that is retried with backoff while the others keep their schedule
 * (the licence check before every presence subscription: licence.check.test.ts; the reconciler:
 * reconciler.timers.test.ts). Graph is faked below the real GraphClient.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Option, Random, Stream, SubscriptionRef } from "effect"
import { TestClock } from "effect/testing"
import { accountRef, AppCredentialRef } from "../../src/graph/client/GraphSettings.ts"
import { LicenceCheck } from "../../src/graph/subscriptions/SubscriptionLicenceCheck.ts"
import { SubscriptionManager } from "../../src/graph/subscriptions/SubscriptionManager.ts"
import { TokenService } from "../../src/graph/auth/TokenService.ts"
import { tempDir } from "../support/tempDir.ts"
import { type GraphCall, graphStack, inertWebhook, makeFakeGraph, minuteOf } from "./fakeGraph.ts"
import { buildManager, subscriptionSettings, teamsUser } from "./managerHarness.ts"

const describeCall = (call: GraphCall) => `${minuteOf(call.at)} ${call.method} ${call.path} ${call.subscription}`

describe("connector timers (TestClock, fake Graph below the real GraphClient)", () => {
  it.effect("presence subscriptions renewed every 10 min, users every 60 min, tokens refreshed ahead of expiry over 3 h", () =>
    Effect.gen(function*() {
      const accounts = ["tech1", "tech2", "tech3"]
      // 64 min: the refresh-ahead window (5 min) starts at minute 59, so the renewal at minute 60 gets a new token
      // although the old one would still be valid; without the window it would be refreshed only at minute 70.
      const fake = makeFakeGraph({ tokenLifetimeSeconds: 64 * 60 })
      const dataDir = yield* tempDir
      const context = yield* buildManager(fake, accounts, dataDir, LicenceCheck.allowAll, 2)
      const manager = Context.get(context, SubscriptionManager)
      yield* manager.setDesiredUsers([1, 2, 3, 4, 5, 6].map((n) => teamsUser(n).id))

      const expectedCount = (minute: number) => 4 + 3 * (minute / 10) + Math.floor(minute / 60)
      for (let minute = 10; minute <= 180; minute += 10) {
        yield* TestClock.adjust("10 minutes")
        // A token refresh of a delegated account reads its refresh-token file: wait for the tick's calls to land.
        yield* fake.until(() => fake.graphCalls().length >= expectedCount(minute))
      }

      const calls = fake.graphCalls()
      assert.strictEqual(calls.length, expectedCount(180), "no call beyond the schedule")
      const created = calls.filter((c) => c.method === "POST")
      // Subscriptions are created concurrently (2 at a time): their order within a minute is not fixed.
      assert.deepStrictEqual(created.map((c) => `${minuteOf(c.at)} ${c.credential} ${c.subscription}`).sort(), [
        "0 app users",
        "0 account:tech1 presence",
        "0 account:tech2 presence",
        "0 account:tech3 presence"
      ].sort())
      const presenceIds = new Map<string, string>() // credential → path of its subscription
      for (const c of calls.filter((c) => c.subscription === "presence" && c.method === "PATCH")) presenceIds.set(c.credential, c.path)
      const expectedPresence = Array.from({ length: 18 }, (_, i) => (i + 1) * 10).flatMap((m) =>
        accounts.map((a) => `${m} PATCH ${presenceIds.get(`account:${a}`)} presence`)
      )
      assert.deepStrictEqual(
        calls.filter((c) => c.subscription === "presence" && c.method === "PATCH").map(describeCall).sort(),
        expectedPresence.sort()
      )
      const usersPath = calls.find((c) => c.subscription === "users" && c.method === "PATCH")!.path
      assert.deepStrictEqual(
        calls.filter((c) => c.subscription === "users" && c.method === "PATCH").map(describeCall),
        [60, 120, 180].map((m) => `${m} PATCH ${usersPath} users`)
      )
      assert.deepStrictEqual(calls.map((c) => c.status).filter((s) => s >= 300), [], "every call succeeded")
      for (let i = 1; i < calls.length; i++) assert.isAtLeast(calls[i]!.at, calls[i - 1]!.at, "the log is in time order")

      // Tokens: never used expired, one per credential per hour (cached in between), each replaced before it expired.
      assert.isTrue(calls.every((c) => c.tokenValid), "no Graph call carried an expired token")
      for (const credential of ["app", ...accounts.map((a) => `account:${a}`)]) {
        const issues = fake.tokensIssued.filter((t) => t.credential === credential)
        assert.deepStrictEqual(issues.map((t) => minuteOf(t.at)), [0, 60, 120, 180], credential)
        for (let i = 1; i < issues.length; i++) assert.isBelow(issues[i]!.at, issues[i - 1]!.expiresAt, `${credential} refreshed before expiry`)
      }
      const status = yield* Context.get(context, TokenService).status
      assert.isTrue(status.every((s) => s.ok))

      // The state is published once the tick's last renewal has been answered.
      const state = yield* SubscriptionRef.changes(manager.state).pipe(
        Stream.filter((s) => s.shards.every((shard) => shard.lastRenewalAt === 180 * 60_000)),
        Stream.runHead,
        Effect.map(Option.getOrThrow)
      )
      assert.deepStrictEqual(state.shards.map((s) => [s.key, s.userCount, s.status, s.lastRenewalAt]), [
        ["tech1", 2, "active", 180 * 60_000],
        ["tech2", 2, "active", 180 * 60_000],
        ["tech3", 2, "active", 180 * 60_000]
      ])
      assert.strictEqual(state.users.lastRenewalAt, 180 * 60_000)
    }).pipe(Effect.scoped))

  it.effect("one failing shard is retried with growing backoff while the other shards are created and renewed on time", () =>
    Effect.gen(function*() {
      const accounts = ["tech1", "tech2", "tech3"]
      const fake = makeFakeGraph({
        tokenLifetimeSeconds: 24 * 3600,
        failFor: (credential) => (credential === "account:tech2" ? 500 : undefined)
      })
      const dataDir = yield* tempDir
      // Sign every credential in first, so no token refresh (and its refresh-token file) falls inside the run.
      const graph = yield* Layer.build(graphStack(fake, accounts, dataDir))
      const tokens = Context.get(graph, TokenService)
      for (const credential of [AppCredentialRef, ...accounts.map(accountRef)]) yield* tokens.getToken(credential)
      const context = yield* Layer.build(
        SubscriptionManager.layer.pipe(
          Layer.provide(Layer.succeedContext(graph)),
          Layer.provide(inertWebhook),
          Layer.provide(LicenceCheck.allowAll),
          Layer.provide(subscriptionSettings(2))
        )
      )
      const manager = Context.get(context, SubscriptionManager)
      const tech2Calls = () => fake.graphCalls().filter((c) => c.credential === "account:tech2")

      const planning = yield* manager.setDesiredUsers([1, 2, 3, 4, 5, 6].map((n) => teamsUser(n).id)).pipe(Effect.forkScoped)
      yield* fake.until(() => tech2Calls().length >= 1)
      for (let i = 0; i < 4; i++) yield* TestClock.adjust("10 minutes")
      yield* TestClock.adjust("1 minute") // lets the last round of retries finish
      yield* Fiber.join(planning)

      const byAccount = (account: string) =>
        fake.graphCalls().filter((c) => c.credential === `account:${account}`).map((c) => `${minuteOf(c.at)} ${c.method} ${c.status}`)
      for (const account of ["tech1", "tech3"]) {
        assert.deepStrictEqual(byAccount(account), ["0 POST 201", "10 PATCH 200", "20 PATCH 200", "30 PATCH 200", "40 PATCH 200"], account)
      }

      // tech2: at start and at every renewal tick one attempt plus 5 retries, the gaps doubling (equal jitter).
      const attempts = tech2Calls()
      assert.isTrue(attempts.every((c) => c.method === "POST" && c.status === 500))
      const rounds = [0, 10, 20, 30, 40].map((m) => attempts.filter((c) => minuteOf(c.at) === m))
      assert.deepStrictEqual(rounds.map((r) => r.length), [6, 6, 6, 6, 6])
      assert.strictEqual(attempts.length, 30)
      for (const round of rounds) {
        const gaps = round.slice(1).map((c, i) => c.at - round[i]!.at)
        gaps.forEach((gap, n) => {
          assert.isAtLeast(gap, 250 * 2 ** n, `retry ${n + 1} waits at least half its backoff`)
          assert.isAtMost(gap, 500 * 2 ** n, `retry ${n + 1} waits at most its backoff`)
          if (n > 0) assert.isAbove(gap, gaps[n - 1]!, "the gaps grow")
        })
      }

      const state = yield* SubscriptionRef.get(manager.state)
      assert.deepStrictEqual(state.shards.map((s) => [s.key, s.status]), [["tech1", "active"], ["tech2", "error"], ["tech3", "active"]])
      assert.match(state.shards[1]!.error ?? "", /HTTP 500/)
      assert.strictEqual(state.shards[0]!.lastRenewalAt, 40 * 60_000)
      assert.strictEqual(state.users.status, "active")
    }).pipe(Effect.scoped, Random.withSeed("failing-shard")))
})
