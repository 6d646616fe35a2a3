/** What the presence sessions send for a user (pure): first sets, refreshes before expiry, clears, backoff. */
import { assert, describe, it } from "@effect/vitest"
import { actionOf, expirationDuration, failed, retryDelay, settled, succeeded, want } from "../../src/graph/sessions/SessionTable.ts"

describe("presence session table (pure)", () => {
  it("a call sets the session, refreshes it when due, and its end clears what Graph holds", () => {
    const inCall = want(undefined, true)
    assert.strictEqual(actionOf(inCall, 0, 240_000), "setPresence")
    const set = succeeded(inCall, "setPresence", 1_000)
    assert.strictEqual(actionOf(set, 240_999, 240_000), "none")
    assert.strictEqual(actionOf(set, 241_000, 240_000), "setPresence")
    const ended = want(set, false)
    assert.strictEqual(actionOf(ended, 2_000, 240_000), "clearPresence")
    const cleared = succeeded(ended, "clearPresence", 3_000)
    assert.isTrue(settled(cleared))
    assert.strictEqual(actionOf(want(undefined, false), 0, 240_000), "none", "nothing to clear for a user never set")
  })

  it("a stored session is held until the call state is known; the same wish keeps its failures, a new one resets them", () => {
    const held = { desired: "held" as const, active: true, failures: 0 }
    assert.strictEqual(actionOf(held, 0, 240_000), "none")
    assert.strictEqual(actionOf(want(held, true), 0, 240_000), "setPresence", "still in a call: set again at once")
    assert.strictEqual(actionOf(want(held, false), 0, 240_000), "clearPresence")
    const failing = failed(want(undefined, true), "boom")
    assert.strictEqual(want(failing, true), failing)
    assert.strictEqual(want(failing, false).failures, 0)
  })

  it("backoff 2 s doubling to 60 s, never before Retry-After; durations as Graph takes them", () => {
    assert.deepStrictEqual([1, 2, 3, 6, 10].map((n) => retryDelay(n, undefined)), [2_000, 4_000, 8_000, 60_000, 60_000])
    assert.strictEqual(retryDelay(1, 30_000), 30_000)
    assert.deepStrictEqual([5, 60, 90, 240].map(expirationDuration), ["PT5M", "PT1H", "PT1H30M", "PT4H"])
  })
})
