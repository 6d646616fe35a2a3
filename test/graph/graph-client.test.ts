import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Schema } from "effect"
import { AppCredentialRef } from "../../src/graph/client/GraphSettings.ts"
import { parseRetryAfter } from "../../src/graph/client/GraphClient.ts"
import { GraphSimulator, generateUsers, simUserId } from "../../src/simulators/graph/GraphSimulator.ts"
import { buildGraph, clientId, clientSecret, settingsFor, tenantId } from "./harness.ts"

const simulator = (users: number, extra: Partial<Parameters<typeof GraphSimulator.make>[0]> = {}) =>
  GraphSimulator.make({
    tenantId,
    clientId,
    clientSecrets: [{ value: clientSecret }],
    users: generateUsers(users, { unlicensedEvery: 10 }),
    ...extra
  })

describe("Graph client, Teams users and presence reads against the simulator", () => {
  it.live("pages through 2,500 users with the advanced query and keeps only enabled Teams users", () =>
    Effect.gen(function*() {
      const sim = yield* simulator(2500)
      yield* sim.updateUser(simUserId(1), { accountEnabled: false })
      const { users } = yield* buildGraph(settingsFor(sim))
      const list = yield* users.listTeamsUsers(AppCredentialRef)
      // 2,500 users, every 10th without Teams (250), one disabled.
      assert.strictEqual(list.length, 2249)
      assert.isFalse(list.some((user) => user.id === simUserId(1)))
      assert.isFalse(list.some((user) => user.id === simUserId(10)))
      assert.deepStrictEqual(list.find((user) => user.id === simUserId(2)), {
        id: simUserId(2),
        displayName: "User 2",
        userPrincipalName: "user2@contoso.com",
        mail: "user2@contoso.com",
        otherMails: []
      })
      // 2,250 matching users at 999 a page: 3 pages, each with ConsistencyLevel (else the simulator answers 400).
      assert.strictEqual((yield* sim.counters).requestsByRoute.users, 3)
    }).pipe(Effect.scoped))

  it.live("getUser: a Teams user, then none once the licence is removed or the user deleted", () =>
    Effect.gen(function*() {
      const sim = yield* simulator(3)
      const { users } = yield* buildGraph(settingsFor(sim))
      assert.isTrue(Option.isSome(yield* users.getUser(simUserId(1), AppCredentialRef)))
      yield* sim.setTeamsLicence(simUserId(1), false)
      assert.isTrue(Option.isNone(yield* users.getUser(simUserId(1), AppCredentialRef)))
      yield* sim.removeUser(simUserId(2))
      assert.isTrue(Option.isNone(yield* users.getUser(simUserId(2), AppCredentialRef)))
    }).pipe(Effect.scoped))

  it.live("reads presences of 2,000 users in 4 batches of at most 650", () =>
    Effect.gen(function*() {
      const sim = yield* simulator(2000)
      yield* sim.setPresence(simUserId(7), { availability: "Busy", activity: "InACall" })
      yield* sim.setPresence(simUserId(8), { availability: "Away", activity: "somethingNew" })
      const { presences } = yield* buildGraph(settingsFor(sim))
      const ids = Array.from({ length: 2000 }, (_, i) => simUserId(i + 1))
      const result = yield* presences.getPresences(ids, AppCredentialRef)
      assert.strictEqual(result.length, 2000)
      assert.strictEqual((yield* sim.counters).requestsByRoute.getPresencesByUserId, 4)
      const busy = result.find((presence) => presence.id === simUserId(7))!
      assert.strictEqual(busy.activity, "InACall")
      assert.strictEqual(busy.availability, "Busy")
      assert.deepStrictEqual(result.find((presence) => presence.id === simUserId(8))!.activity, {
        _tag: "Unknown",
        raw: "somethingNew"
      })
    }).pipe(Effect.scoped))

  it.live("429 with a fractional Retry-After is honoured before the retry", () =>
    Effect.gen(function*() {
      const sim = yield* simulator(5)
      const { presences } = yield* buildGraph(settingsFor(sim))
      yield* presences.getPresences([simUserId(1)], AppCredentialRef) // sign in first
      yield* sim.faults.throttle(2, 0.25)
      const started = performance.now()
      const result = yield* presences.getPresences([simUserId(1)], AppCredentialRef)
      const elapsed = performance.now() - started
      assert.strictEqual(result.length, 1)
      assert.isAtLeast(elapsed, 500, "two Retry-After waits of 0.25 s")
      assert.strictEqual((yield* sim.counters).throttled, 2)
    }).pipe(Effect.scoped))

  it.live("the simulator's own rate limit answers 429 and the reader waits it out", () =>
    Effect.gen(function*() {
      const sim = yield* simulator(10, { presenceRequestsPerWindow: 2, presenceWindowSeconds: 0.3 })
      // The client-side limiter is set looser than the server's, so the server's 429 must be honoured.
      const { presences } = yield* buildGraph(settingsFor(sim), { presence: { batchSize: 2, concurrency: 1 } })
      const ids = Array.from({ length: 8 }, (_, i) => simUserId(i + 1))
      const result = yield* presences.getPresences(ids, AppCredentialRef)
      assert.strictEqual(result.length, 8)
      assert.isAtLeast((yield* sim.counters).throttled, 1)
    }).pipe(Effect.scoped))

  it.live("5xx is retried with backoff, and surfaces as a typed GraphError when it persists", () =>
    Effect.gen(function*() {
      const sim = yield* simulator(5)
      const { presences } = yield* buildGraph(settingsFor(sim), { retry: { maxRetries: 3, baseDelayMillis: 5 } })
      yield* sim.faults.serverErrors(2, 503)
      assert.strictEqual((yield* presences.getPresences([simUserId(1)], AppCredentialRef)).length, 1)

      yield* sim.faults.serverErrors(10, 500)
      const error = yield* presences.getPresences([simUserId(1)], AppCredentialRef).pipe(Effect.flip)
      assert.strictEqual(error._tag, "GraphError")
      if (error._tag === "GraphError") {
        assert.strictEqual(error.status, 500)
        assert.strictEqual(error.code, "generalException")
        assert.isString(error.requestId)
      }
      // 1 attempt + 3 retries consumed 4 of the 10 injected failures.
      assert.strictEqual(sim.state.faults.serverErrors.count, 6)
    }).pipe(Effect.scoped))

  it.live("a rejected token (401) is replaced once and the call succeeds", () =>
    Effect.gen(function*() {
      const sim = yield* simulator(5)
      const { presences } = yield* buildGraph(settingsFor(sim))
      yield* presences.getPresences([simUserId(1)], AppCredentialRef)
      yield* sim.expireAllTokens
      assert.strictEqual((yield* presences.getPresences([simUserId(1)], AppCredentialRef)).length, 1)
      assert.strictEqual((yield* sim.counters).tokensIssued, 2)
    }).pipe(Effect.scoped))

  it.live("the simulator enforces Graph's rules: 650 ids, $top ≤ 999, advanced-query headers", () =>
    Effect.gen(function*() {
      const sim = yield* simulator(3)
      const { graph } = yield* buildGraph(settingsFor(sim))
      const Any = Schema.Unknown
      const tooMany = yield* graph.execute({
        method: "POST",
        url: "/v1.0/communications/getPresencesByUserId",
        credential: AppCredentialRef,
        body: { ids: Array.from({ length: 651 }, (_, i) => simUserId(i + 1)) },
        response: Any
      }).pipe(Effect.flip)
      assert.strictEqual(tooMany._tag === "GraphError" && tooMany.status, 400)
      const bigTop = yield* graph.execute({ method: "GET", url: "/v1.0/users?$top=1000", credential: AppCredentialRef, response: Any })
        .pipe(Effect.flip)
      assert.strictEqual(bigTop._tag === "GraphError" && bigTop.status, 400)
      const noHeader = yield* graph.execute({
        method: "GET",
        url: "/v1.0/users?$count=true&$filter=" +
          encodeURIComponent("assignedPlans/any(a:a/servicePlanId eq 57ff2da0-773e-42df-b2af-ffb7a2317929 and a/capabilityStatus eq 'Enabled')"),
        credential: AppCredentialRef,
        response: Any
      }).pipe(Effect.flip)
      assert.strictEqual(noHeader._tag === "GraphError" && noHeader.status, 400)
      const noCount = yield* graph.execute({
        method: "GET",
        url: "/v1.0/users?$filter=" +
          encodeURIComponent("assignedPlans/any(a:a/servicePlanId eq 57ff2da0-773e-42df-b2af-ffb7a2317929 and a/capabilityStatus eq 'Enabled')"),
        credential: AppCredentialRef,
        headers: { ConsistencyLevel: "eventual" },
        response: Any
      }).pipe(Effect.flip)
      assert.strictEqual(noCount._tag === "GraphError" && noCount.code, "Request_UnsupportedQuery")
    }).pipe(Effect.scoped))

  it("parses Retry-After in (fractional) seconds", () => {
    assert.deepStrictEqual(parseRetryAfter("2.128"), Option.some(2128))
    assert.deepStrictEqual(parseRetryAfter("3"), Option.some(3000))
    assert.isTrue(Option.isNone(parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT")))
    assert.isTrue(Option.isNone(parseRetryAfter(undefined)))
  })
})
