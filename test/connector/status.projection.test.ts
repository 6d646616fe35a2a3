/**
 * The status projection's lights and details (status/ProjectionCache.ts): a projection whose inputs did not change
 * returns the previous parts themselves, as time passes (TestClock), and a changed input rebuilds the parts it feeds,
 * and only those.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { TestClock } from "effect/testing"
import type { CredentialStatus } from "../../src/graph/auth/TokenCache.ts"
import { AppCredentialRef } from "../../src/graph/client/GraphSettings.ts"
import type { ReadHealth } from "../../src/graph/presence/ReadRetry.ts"
import type { SubscriptionsState } from "../../src/graph/subscriptions/SubscriptionState.ts"
import type { PbxState } from "../../src/pbx/socket/PbxConnections.ts"
import { makeProjectionCache, type ProjectionInputs } from "../../src/status/ProjectionCache.ts"
import { planOf } from "../support/plans.ts"

const master = (connected: boolean): PbxState => ({
  pbx: "pbx-master",
  isMaster: true,
  connected,
  loggedIn: connected,
  apis: ["PbxApi", "PbxTableUsers"],
  missingApis: [],
  connectedAt: 1_000
})
const signedIn = (): ReadonlyArray<CredentialStatus> => [{ credential: AppCredentialRef, label: "app", ok: true, expiresAt: 9e12 }]
const subscriptions: SubscriptionsState = {
  shards: [{ key: "s1", account: undefined, userCount: 3, status: "active", expiresAt: 9e12 }],
  users: { status: "active", expiresAt: 9e12 }
}

/** The inputs as the projector reads them: the credential statuses and the errors are new arrays on every read. */
const inputs = (over: Partial<ProjectionInputs> = {}) =>
  Effect.map(Clock.currentTimeMillis, (now): ProjectionInputs => ({
    mode: "push",
    refreshMinutes: 60,
    masterPbx: "pbx-master",
    keyStoreProblem: undefined,
    pbxStates: pbxStates,
    directoryLoaded: true,
    credentials: signedIn(),
    subscriptions,
    plan,
    recent: [...recent],
    reads: { _tag: "Ok" },
    now,
    ...over
  }))
const pbxStates = new Map([["pbx-master", master(true)]])
const plan = planOf([1, 2, 3])
const recent = [{ at: 0, level: "Error", message: "earlier" }]

describe("the status projection's parts", () => {
  it.effect("unchanged inputs give the same parts as time passes; a changed input rebuilds what it feeds", () =>
    Effect.gen(function*() {
      const project = makeProjectionCache()
      const first = project(yield* inputs())
      assert.strictEqual(first.lights.masterPbx.state, "green")
      assert.strictEqual(first.lights.presenceSubscription.state, "green")
      yield* TestClock.adjust(500)
      assert.strictEqual(project(yield* inputs()), first, "an unchanged projection is the previous one")

      const down = new Map([["pbx-master", master(false)]])
      const second = project(yield* inputs({ pbxStates: down }))
      assert.notStrictEqual(second, first)
      assert.strictEqual(second.lights.masterPbx.state, "red")
      assert.notStrictEqual(second.pbxs, first.pbxs)
      assert.strictEqual(second.lights.authentication, first.lights.authentication)
      assert.strictEqual(second.lights.presenceSubscription, first.lights.presenceSubscription)
      assert.strictEqual(second.credentials, first.credentials)
      assert.strictEqual(second.shards, first.shards)
      assert.strictEqual(second.errors, first.errors)

      const failing = project(yield* inputs({ credentials: [{ ...signedIn()[0]!, ok: false }], pbxStates: down }))
      assert.strictEqual(failing.lights.authentication.state, "red")
      assert.notStrictEqual(failing.credentials, second.credentials)
      assert.strictEqual(failing.lights.masterPbx, second.lights.masterPbx)
    }))

  it.effect("the presence light follows the clock while reads fail, and errors leave the page after a day", () =>
    Effect.gen(function*() {
      const project = makeProjectionCache()
      const since = yield* Clock.currentTimeMillis
      const reads: ReadHealth = { _tag: "Failing", users: 3, since, error: "TooManyRequests (HTTP 429)", attempts: 1, retryInMillis: 1_000 }
      const amber = project(yield* inputs({ reads }))
      assert.strictEqual(amber.lights.presenceSubscription.state, "amber")
      yield* TestClock.adjust("5 minutes")
      const red = project(yield* inputs({ reads }))
      assert.strictEqual(red.lights.presenceSubscription.state, "red")
      assert.strictEqual(red.errors, amber.errors)
      assert.lengthOf(red.errors, 1)
      yield* TestClock.adjust("1 day")
      assert.lengthOf(project(yield* inputs({ reads })).errors, 0)
    }))
})
