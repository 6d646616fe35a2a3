/**
 * The Graph side of PBX → Teams under TestClock, over real sockets against the Graph simulator: a session is set, kept
 * alive by refreshes before it expires, and cleared; a Retry-After pauses the presence budget; a session stored by
 * an earlier run is cleared at start-up unless its user is in a call by then.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Layer, Queue, Scope, Stream, SubscriptionRef } from "effect"
import { TestClock } from "effect/testing"
import { TokenService } from "../../src/graph/auth/TokenService.ts"
import { GraphClient } from "../../src/graph/client/GraphClient.ts"
import { AppCredentialRef, GraphConfig } from "../../src/graph/client/GraphSettings.ts"
import { PresenceBudget } from "../../src/graph/sessions/PresenceBudget.ts"
import { PresenceSessions, type PresenceSessionsOptions } from "../../src/graph/sessions/PresenceSessions.ts"
import { generateUsers, GraphSimulator, type GraphSimulatorHandle, type SessionCall } from "../../src/simulators/graph/GraphSimulator.ts"
import { clientId, clientSecret, settingsFor, tempDataDir, tenantId } from "./harness.ts"
import { fileState } from "../support/state.ts"

const users = generateUsers(3)
const [u1, u2, u3] = users.map((u) => u.id!) as [string, string, string]

const startSim = GraphSimulator.make({ tenantId, clientId, clientSecrets: [{ value: clientSecret }], users })

const options: PresenceSessionsOptions = {
  sessionId: clientId,
  credential: AppCredentialRef,
  availability: "Busy",
  activity: "InACall",
  expirationMinutes: 5,
  refreshMillis: 240_000,
  concurrency: 4,
  startupHoldMillis: 30_000
}

/** The writer over the real GraphClient (no retries of its own) and token service, into `scope`. */
const buildWriter = (sim: GraphSimulatorHandle, dataDir: string, scope: Scope.Scope) =>
  Layer.buildWithScope(
    PresenceSessions.layer(options).pipe(
      Layer.provideMerge(PresenceBudget.layer),
      Layer.provide(GraphClient.layerWith({ maxRetries: 0 })),
      Layer.provide(TokenService.layer),
      // The sessions are kept in the state store: tenant `default`'s files in `dataDir`.
      Layer.provide(Layer.mergeAll(Layer.succeed(GraphConfig, settingsFor(sim)), NodeHttpClient.layerUndici, fileState(dataDir)))
    ),
    scope
  ).pipe(Effect.map((context) => ({ sessions: Context.get(context, PresenceSessions), budget: Context.get(context, PresenceBudget) })))

/** Every presence write the simulator answers, from now on, as a queue to take from. */
const followCalls = (sim: GraphSimulatorHandle) =>
  Effect.gen(function*() {
    const calls = yield* Queue.unbounded<SessionCall>()
    const started = yield* Deferred.make<void>()
    yield* Stream.fromPubSub(sim.state.sessionCalls).pipe(
      Stream.onStart(Deferred.succeed(started, undefined)),
      Stream.runForEach((call) => Queue.offer(calls, call)),
      Effect.forkScoped
    )
    yield* Deferred.await(started)
    return calls
  })

const shows = (sim: GraphSimulatorHandle, id: string) => {
  const presence = sim.state.getPresence(id)!
  return `${presence.availability}/${presence.activity}`
}

const activeIs = (sessions: PresenceSessions["Service"], check: (active: ReadonlySet<string>) => boolean) =>
  Stream.runHead(Stream.filter(SubscriptionRef.changes(sessions.activeUsers), check)).pipe(Effect.asVoid)

describe("PBX → Teams: presence sessions in Graph (TestClock)", () => {
  it.effect("set while the call lasts, refreshed every 4 minutes so the 5-minute session never lapses, cleared at its end", () =>
    Effect.gen(function*() {
      const sim = yield* startSim
      const calls = yield* followCalls(sim)
      const { sessions } = yield* buildWriter(sim, tempDataDir(), yield* Effect.scope)
      yield* sim.setPresence(u1, { availability: "Available", activity: "Available" })

      yield* sessions.setInCall(u1, true)
      const first = yield* Queue.take(calls)
      assert.deepInclude(first, { operation: "setPresence", userId: u1, sessionId: clientId, availability: "Busy", activity: "InACall", expirationDuration: "PT5M", status: 200, at: 0 })
      yield* activeIs(sessions, (active) => active.has(u1))
      assert.strictEqual(shows(sim, u1), "Busy/InACall")

      // Twelve minutes of call: a refresh every four, and Teams shows the call all along.
      for (const minute of [4, 8, 12]) {
        yield* TestClock.adjust("4 minutes")
        const refresh = yield* Queue.take(calls)
        assert.strictEqual(refresh.operation, "setPresence")
        assert.strictEqual(refresh.at, minute * 60_000)
        assert.strictEqual(shows(sim, u1), "Busy/InACall", `at minute ${minute}`)
      }
      assert.strictEqual(yield* Queue.size(calls), 0, "nothing beyond the refreshes")

      yield* sessions.setInCall(u1, false)
      const clear = yield* Queue.take(calls)
      assert.deepInclude(clear, { operation: "clearPresence", userId: u1, sessionId: clientId, status: 200 })
      yield* activeIs(sessions, (active) => active.size === 0)
      assert.strictEqual(shows(sim, u1), "Available/Available")
    }).pipe(Effect.scoped))

  it.effect("without refreshes the simulator's session expires after its 5 minutes (what the refresh prevents)", () =>
    Effect.gen(function*() {
      const sim = yield* startSim
      yield* sim.setPresence(u2, { availability: "Available", activity: "Available" })
      // The session as Graph would hold it after one setPresence and no refresh.
      yield* sim.state.setSession(u2, clientId, { availability: "Busy", activity: "InACall", setAt: 0, expiresAt: 5 * 60_000 })
      assert.strictEqual(shows(sim, u2), "Busy/InACall")
      yield* TestClock.adjust("5 minutes")
      assert.strictEqual(shows(sim, u2), "Available/Available")
    }).pipe(Effect.scoped))

  it.effect("a 429 with Retry-After pauses the whole presence budget; the user's state is written once it has passed", () =>
    Effect.gen(function*() {
      const sim = yield* startSim
      const calls = yield* followCalls(sim)
      const { sessions, budget } = yield* buildWriter(sim, tempDataDir(), yield* Effect.scope)
      yield* sim.faults.throttle(1, 3)
      yield* sessions.setInCall(u2, true)
      const refused = yield* Queue.take(calls)
      assert.strictEqual(refused.status, 429)
      const failure = yield* Stream.runHead(Stream.filter(SubscriptionRef.changes(sessions.failing), (f) => f !== undefined))
      assert.strictEqual(failure._tag === "Some" ? failure.value?.status : undefined, 429)
      assert.strictEqual((yield* budget.usage).pausedUntil, 3000)
      // A second user waits behind the pause too.
      yield* sessions.setInCall(u3, true)
      yield* TestClock.adjust("3 seconds")
      const [a, b] = [yield* Queue.take(calls), yield* Queue.take(calls)]
      assert.deepStrictEqual([a, b].map((c) => `${c.userId} ${c.status} ${c.at}`).sort(), [`${u2} 200 3000`, `${u3} 200 3000`].sort())
      yield* activeIs(sessions, (active) => active.has(u2) && active.has(u3))
    }).pipe(Effect.scoped))

  it.effect("a session stored by an earlier run is cleared after the start-up wait, unless its user is in a call by then", () =>
    Effect.gen(function*() {
      const sim = yield* startSim
      const calls = yield* followCalls(sim)
      const dataDir = tempDataDir()
      const first = yield* Scope.make()
      const before = yield* buildWriter(sim, dataDir, first)
      yield* before.sessions.setInCall(u1, true)
      yield* before.sessions.setInCall(u2, true)
      yield* activeIs(before.sessions, (active) => active.size === 2)
      assert.strictEqual((yield* Queue.takeAll(calls)).length, 2)
      // A crash: no clear on the way out; the store keeps both users.
      yield* Scope.close(first, Exit.void)

      const { sessions } = yield* buildWriter(sim, dataDir, yield* Effect.scope)
      // u2 is still in a call when the PBX answers; u1 is not heard of before the wait ends.
      yield* sessions.setInCall(u2, true)
      const refreshed = yield* Queue.take(calls)
      assert.deepInclude(refreshed, { operation: "setPresence", userId: u2, status: 200 })
      yield* TestClock.adjust("30 seconds")
      const cleared = yield* Queue.take(calls)
      assert.deepInclude(cleared, { operation: "clearPresence", userId: u1, status: 200, at: 30_000 })
      yield* activeIs(sessions, (active) => active.size === 1 && active.has(u2))
      assert.strictEqual(shows(sim, u1), "Offline/Offline")
      assert.strictEqual(shows(sim, u2), "Busy/InACall")
    }).pipe(Effect.scoped))

  it.effect("clearPresence of a session Graph no longer holds (404) counts as cleared", () =>
    Effect.gen(function*() {
      const sim = yield* startSim
      const calls = yield* followCalls(sim)
      const { sessions } = yield* buildWriter(sim, tempDataDir(), yield* Effect.scope)
      yield* sessions.setInCall(u3, true)
      yield* Queue.take(calls)
      yield* sim.state.clearSession(u3, clientId)
      yield* sessions.setInCall(u3, false)
      const gone = yield* Queue.take(calls)
      assert.deepInclude(gone, { operation: "clearPresence", status: 404 })
      yield* activeIs(sessions, (active) => active.size === 0)
      assert.deepStrictEqual((yield* sessions.health).failing, undefined)
    }).pipe(Effect.scoped))
})

