/**
 * The connector's timers under TestClock: presence renewals every 10 minutes and the users subscription every 60, the
 * licence check before every presence subscription, token refresh ahead of expiry, and one failing shard
 * that is retried with backoff while the others keep their schedule. Graph is faked below the real GraphClient.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Option, Random, Stream, SubscriptionRef } from "effect"
import { TestClock } from "effect/testing"
import { FlowState, LicenceCheckFromPbx } from "../../src/connector/Flow.ts"
import { makePlan, matchForPlan } from "../../src/connector/Plan.ts"
import { accountRef, AppCredentialRef } from "../../src/graph/client/GraphSettings.ts"
import { LicenceCheck } from "../../src/graph/subscriptions/SubscriptionLicenceCheck.ts"
import { SubscriptionManager } from "../../src/graph/subscriptions/SubscriptionManager.ts"
import { defaultSubscriptionSettings, SubscriptionSettings } from "../../src/graph/subscriptions/SubscriptionSettings.ts"
import type { TeamsUser } from "../../src/graph/users/TeamsUsers.ts"
import { TokenService } from "../../src/graph/auth/TokenService.ts"
import { type LicencePass, Licences } from "../../src/pbx/directory/Licences.ts"
import type { PbxUser } from "../../src/pbx/directory/UserDirectory.ts"
import { tempDir } from "../support/tempDir.ts"
import { type FakeGraph, type GraphCall, graphStack, inertWebhook, makeFakeGraph, minuteOf } from "./fakeGraph.ts"

/** The schedules below are exact; the lookups between renewals (every `verifySeconds`) are tested on their own. */
const subscriptionSettings = (maxUsersPerShard = 650, verifySeconds = 24 * 3600) =>
  SubscriptionSettings.layer(defaultSubscriptionSettings({
    publicBaseUrl: "https://connector.example",
    appId: "c",
    includeResourceData: false,
    maxUsersPerShard,
    verifySeconds
  }))

/** The real manager over the real Graph stack and the fake HttpClient. */
const buildManager = (
  fake: FakeGraph,
  accounts: ReadonlyArray<string>,
  dataDir: string,
  licence: Layer.Layer<LicenceCheck>,
  maxUsersPerShard?: number,
  verifySeconds?: number
) =>
  Layer.build(
    SubscriptionManager.layer.pipe(
      Layer.provideMerge(graphStack(fake, accounts, dataDir)),
      Layer.provide(inertWebhook),
      Layer.provide(licence),
      Layer.provide(subscriptionSettings(maxUsersPerShard, verifySeconds))
    )
  )

const describeCall = (call: GraphCall) => `${minuteOf(call.at)} ${call.method} ${call.path} ${call.subscription}`

const teamsUser = (n: number): TeamsUser => ({
  id: `0000000${n}-aaaa-4bbb-8ccc-00000000000${n}`,
  displayName: `User ${n}`,
  userPrincipalName: `user${n}@contoso.com`,
  mail: `user${n}@contoso.com`,
  otherMails: []
})

const pbxUser = (n: number): PbxUser => ({
  guid: `guid-${n}`,
  h323: `user${n}`,
  cn: `User ${n}`,
  dn: `User ${n}`,
  e164: `10${n}`,
  emails: [`user${n}@contoso.com`],
  loc: "master",
  node: "root",
  apps: ["presence"],
  hide: false
})

const licencePass = (users: ReadonlyArray<PbxUser>, licensed: ReadonlySet<string>): LicencePass => ({
  verdicts: new Map(users.map((u) => [u.guid, licensed.has(u.guid) ? { _tag: "Licensed" } : { _tag: "Unlicensed", reason: "licence withdrawn" }])),
  summary: { mode: "appRight", name: "presence" }
})

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
      assert.deepStrictEqual(created.map((c) => `${minuteOf(c.at)} ${c.credential} ${c.subscription}`), [
        "0 app users",
        "0 account:tech1 presence",
        "0 account:tech2 presence",
        "0 account:tech3 presence"
      ])
      const presenceIds = new Map<string, string>() // credential → path of its subscription
      for (const c of calls.filter((c) => c.subscription === "presence" && c.method === "PATCH")) presenceIds.set(c.credential, c.path)
      const expectedPresence = Array.from({ length: 18 }, (_, i) => (i + 1) * 10).flatMap((m) =>
        accounts.map((a) => `${m} PATCH ${presenceIds.get(`account:${a}`)} presence`)
      )
      assert.deepStrictEqual(calls.filter((c) => c.subscription === "presence" && c.method === "PATCH").map(describeCall), expectedPresence)
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

  it.effect("the licence check runs right before every presence creation and renewal; an unlicensed user is left out", () =>
    Effect.gen(function*() {
      const fake = makeFakeGraph({ tokenLifetimeSeconds: 3600 })
      const dataDir = yield* tempDir
      const teams = [1, 2, 3].map(teamsUser)
      const pbx = [1, 2, 3].map(pbxUser)
      let licensed: ReadonlySet<string> = new Set(pbx.map((u) => u.guid))
      const licences = Layer.succeed(Licences, Licences.of({
        mode: "appRight",
        assess: (users) => fake.licenceCalled.pipe(Effect.map(() => licencePass(users, licensed)))
      }))
      const flowState = yield* Layer.build(FlowState.layer)
      const state = Context.get(flowState, FlowState)
      yield* SubscriptionRef.set(
        state.plan,
        makePlan({
          match: matchForPlan({ teamsUsers: teams, pbxUsers: pbx, strategy: { _tag: "email" } }),
          ...licencePass(pbx, licensed),
          licensing: { mode: "appRight", name: "presence" }
        })
      )
      const licenceCheck = LicenceCheckFromPbx.pipe(Layer.provide(licences), Layer.provide(Layer.succeedContext(flowState)))
      const context = yield* buildManager(fake, ["tech1"], dataDir, licenceCheck)
      const manager = Context.get(context, SubscriptionManager)
      yield* manager.setDesiredUsers(teams.map((u) => u.id))

      const step = Effect.fnUntraced(function*(minutes: number, callsAfter: number) {
        yield* TestClock.adjust(`${minutes} minutes`)
        yield* fake.until(() => fake.graphCalls().length >= callsAfter)
      })
      yield* step(10, 3)
      yield* step(10, 4)
      yield* step(5, 4)
      licensed = new Set(["guid-1", "guid-3"]) // user 2's PBX licence is withdrawn at minute 25
      yield* step(5, 6)
      yield* step(10, 7)
      yield* step(5, 7)
      licensed = new Set(pbx.map((u) => u.guid)) // and given back at minute 45
      yield* step(5, 9)

      const line = (entry: (typeof fake.log)[number]) =>
        entry.kind === "licence" ? `${minuteOf(entry.at)} licence` : `${minuteOf(entry.at)} ${entry.method} ${entry.subscription}`
      assert.deepStrictEqual(fake.log.map(line), [
        "0 POST users",
        "0 licence",
        "0 POST presence",
        "10 licence",
        "10 PATCH presence",
        "20 licence",
        "20 PATCH presence",
        // minute 30: the check finds user 2 unlicensed, the subscription is replaced by one without them
        "30 licence",
        "30 DELETE presence",
        "30 POST presence",
        "40 licence",
        "40 PATCH presence",
        // minute 50: the licence is back, the subscription is replaced by one with all three
        "50 licence",
        "50 DELETE presence",
        "50 POST presence"
      ])
      // Every create or renewal follows a licence check made after the previous create or renewal (a DELETE between
      // the check and the create it decided is fine).
      const writes = (entry: (typeof fake.log)[number]) =>
        entry.kind === "graph" && entry.subscription === "presence" && (entry.method === "POST" || entry.method === "PATCH")
      fake.log.forEach((entry, i) => {
        if (!writes(entry)) return
        const before = fake.log.slice(0, i).filter((e) => e.kind === "licence" || writes(e))
        assert.strictEqual(before[before.length - 1]?.kind, "licence", `${line(entry)} is preceded by a licence check`)
      })
      const resources = fake.graphCalls().filter((c) => c.subscription === "presence" && c.method === "POST").map((c) => c.resource)
      const ids = (resource: string | undefined) => [...(resource ?? "").matchAll(/'([^']+)'/g)].map((m) => m[1])
      assert.deepStrictEqual(ids(resources[0]), teams.map((u) => u.id))
      assert.deepStrictEqual(ids(resources[1]), [teams[0]!.id, teams[2]!.id], "user 2 is left out after the licence is withdrawn")
      assert.deepStrictEqual(ids(resources[2]), teams.map((u) => u.id))
      const shard = (yield* SubscriptionRef.get(manager.state)).shards[0]!
      assert.strictEqual(shard.status, "active")
      assert.strictEqual(shard.userCount, 3)
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
