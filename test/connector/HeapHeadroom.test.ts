/** The heap limit against the served users: the formula, and when the connector warns at start-up. */
import { assert, describe, it } from "@effect/vitest"
import { expectedLiveHeapMb, heapAdvice, recommendedOldSpaceMb } from "../../src/connector/HeapHeadroom.ts"

describe("heap headroom", () => {
  it("the shipped limit (224 MB old space, 260 MB in all) fits 10,000 users and warns at 50,000", () => {
    assert.isUndefined(heapAdvice(10_000, 260))
    const advice = heapAdvice(50_000, 260)
    assert.isDefined(advice)
    assert.strictEqual(advice!.recommended, 360)
    assert.include(advice!.message, "--max-old-space-size=360")
    assert.include(advice!.message, "CONNECTOR_HEAP_MB=360")
    assert.include(advice!.message, "50000 served users")
  })

  it("the recommended old space holds twice the expected live heap, never less than the shipped 224 MB", () => {
    assert.strictEqual(recommendedOldSpaceMb(1_000), 224)
    assert.strictEqual(recommendedOldSpaceMb(100_000), 640)
    for (const users of [30_000, 50_000, 100_000, 200_000]) {
      const limit = recommendedOldSpaceMb(users) + 36
      assert.isAtLeast(limit, 2 * expectedLiveHeapMb(users))
      // Started as advised, the connector does not warn again.
      assert.isUndefined(heapAdvice(users, limit))
    }
  })
})
