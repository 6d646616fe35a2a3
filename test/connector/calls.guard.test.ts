/**
 * The loop guard between PBX → Teams and Teams → PBX: what only shows the connector's own session for a PBX call is
 * held back during the call and its grace; the user's latest presence, if it was held back, comes back when the grace
 * has passed; anything else passes at once. The pure decision first, then the service under TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Schema, Stream } from "effect"
import { TestClock } from "effect/testing"
import { CallGuard } from "../../src/connector/calls/CallGuard.ts"
import { holdsBack, showsOwnSession } from "../../src/connector/calls/LoopGuard.ts"
import { GraphPresence } from "../../src/domain/Presence.ts"
import type { PresenceChange } from "../../src/graph/presence/PresenceSource.ts"

const presence = (availability: string, activity: string): GraphPresence =>
  Schema.decodeUnknownSync(GraphPresence)({ id: "u1", availability, activity })
const session = { availability: "Busy", activity: "InACall" }
const change = (availability: string, activity: string, receivedAt = 0): PresenceChange => ({
  userId: "U1",
  presence: presence(availability, activity),
  receivedAt,
  origin: "push"
})

describe("loop guard (pure)", () => {
  it("the session's own pair and Busy/Busy show the session; anything else is the user's own", () => {
    assert.isTrue(showsOwnSession(presence("Busy", "InACall"), session))
    assert.isTrue(showsOwnSession(presence("busy", "inacall"), session))
    assert.isTrue(showsOwnSession(presence("Busy", "Busy"), session))
    for (const [a, b] of [["Busy", "InAMeeting"], ["DoNotDisturb", "DoNotDisturb"], ["Available", "Available"], ["Busy", "InAConferenceCall"], ["Away", "Away"]]) {
      assert.isFalse(showsOwnSession(presence(a!, b!), session), `${a}/${b}`)
    }
    assert.isTrue(showsOwnSession(presence("DoNotDisturb", "Presenting"), { availability: "DoNotDisturb", activity: "Presenting" }))
  })

  it("held back only while the call lasts and for the grace after it", () => {
    const inCall = presence("Busy", "InACall")
    assert.isFalse(holdsBack(inCall, undefined, 1000, session, 60_000), "no PBX call: a Teams call passes")
    assert.isTrue(holdsBack(inCall, { since: 0 }, 1000, session, 60_000))
    assert.isTrue(holdsBack(inCall, { since: 0, endedAt: 10_000 }, 69_999, session, 60_000))
    assert.isFalse(holdsBack(inCall, { since: 0, endedAt: 10_000 }, 70_000, session, 60_000))
    assert.isFalse(holdsBack(presence("DoNotDisturb", "DoNotDisturb"), { since: 0 }, 1000, session, 60_000))
  })
})

describe("CallGuard (TestClock)", () => {
  const build = Effect.map(Layer.build(CallGuard.layer(session, 60_000)), (context) => Context.get(context, CallGuard))

  it.effect("during a call the echo is held back and the user's own states pass; after the grace the held one is released if still the latest", () =>
    Effect.gen(function*() {
      const guard = yield* build
      const started = yield* Deferred.make<void>()
      const released = yield* guard.released.pipe(Stream.onStart(Deferred.succeed(started, undefined)), Stream.take(1), Stream.runCollect, Effect.forkScoped)
      yield* Deferred.await(started)
      assert.isTrue(yield* guard.admit("u1", change("Busy", "InACall")), "no call yet")
      yield* guard.begin("u1", 0)
      assert.isFalse(yield* guard.admit("u1", change("Busy", "InACall", 1)))
      assert.isTrue(yield* guard.admit("u2", change("Busy", "InACall", 1)), "another user is not guarded")
      assert.isTrue(yield* guard.admit("u1", change("DoNotDisturb", "DoNotDisturb", 2)), "the user's own choice passes")
      // The echo again, then the call ends: the echo is the latest and is held until the grace has passed.
      assert.isFalse(yield* guard.admit("u1", change("Busy", "Busy", 3)))
      yield* guard.end("u1", 10_000)
      yield* TestClock.adjust("59 seconds")
      assert.strictEqual(released.pollUnsafe(), undefined)
      yield* TestClock.adjust("1 second")
      const [out] = yield* Fiber.join(released)
      assert.strictEqual(out!.receivedAt, 3)
      assert.isTrue(yield* guard.admit("u1", out!), "released: now it passes")
    }).pipe(Effect.scoped))

  it.effect("a newer presence replaces what was held (nothing stale comes back); a new call in the grace keeps guarding", () =>
    Effect.gen(function*() {
      const guard = yield* build
      const seen: Array<PresenceChange> = []
      const started = yield* Deferred.make<void>()
      yield* guard.released.pipe(Stream.onStart(Deferred.succeed(started, undefined)), Stream.runForEach((c) => Effect.sync(() => seen.push(c))), Effect.forkScoped)
      yield* Deferred.await(started)
      yield* guard.begin("u1", 0)
      assert.isFalse(yield* guard.admit("u1", change("Busy", "InACall", 1)))
      assert.isTrue(yield* guard.admit("u1", change("Available", "Available", 2)))
      yield* guard.end("u1", 5_000)
      yield* TestClock.adjust("2 minutes")
      assert.deepStrictEqual(seen, [])
      // Call, end, and a new call within the grace: the echo stays held.
      yield* guard.begin("u1", 200_000)
      yield* guard.end("u1", 210_000)
      yield* TestClock.adjust("10 seconds")
      yield* guard.begin("u1", 230_000)
      assert.isFalse(yield* guard.admit("u1", change("Busy", "InACall", 3)))
      yield* TestClock.adjust("5 minutes")
      assert.deepStrictEqual(seen, [])
    }).pipe(Effect.scoped))
})
