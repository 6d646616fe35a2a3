/**
 * The decryption pipeline's loops (dispatchers and publisher) go on with what is already queued in the same turn of the
 * event loop. Counted in turns of a scheduler the test runs by hand (each turn runs what the fibers scheduled before
 * it, as `setImmediate` does): with many tenants of one item per POST, one chunk per turn and loop was slower than
 * the POSTs came (docs/performance.md, "tenants-50: one POST per turn").
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, PubSub, Redacted, Scheduler } from "effect"
import type { GraphPresence } from "../../src/domain/Presence.ts"
import { DecryptPool } from "../../src/graph/notifications/crypto/DecryptPool.ts"
import { ValidationTokens } from "../../src/graph/notifications/crypto/ValidationTokens.ts"
import { decryptBatch, makeDecryption, type PushedPresence } from "../../src/graph/notifications/Decryption.ts"
import type { BatchItem } from "../../src/graph/notifications/Intake.ts"

/** A scheduler whose turns the test runs: `turn()` runs the tasks scheduled so far; those they schedule wait for the next. */
const manualScheduler = () => {
  let pending: Array<() => void> = []
  const scheduler = new Scheduler.MixedScheduler("async", (task) => {
    pending.push(task)
    return () => {
      pending = pending.filter((t) => t !== task)
    }
  })
  const turn = () => {
    const now = pending
    pending = []
    for (const task of now) task()
  }
  return { scheduler, turn }
}

const presence = (id: string): GraphPresence => ({ id, availability: "Busy", activity: "Busy" })

const subscription = { id: "sub-1", kind: "presence" as const, key: "shard-1", clientState: Redacted.make("state") }
const richItem = (id: string): BatchItem => ({
  subscription,
  item: {
    subscriptionId: "sub-1",
    changeType: "updated",
    resourceData: { id },
    encryptedContent: {
      data: JSON.stringify(presence(id)),
      dataKey: "",
      dataSignature: "",
      encryptionCertificateId: "",
      encryptionCertificateThumbprint: ""
    }
  }
})

/** A pool that answers at once, with each item's data as its plaintext. */
const pool = DecryptPool.of({
  decrypt: (items) => Effect.succeed(items.map((content) => ({ ok: true as const, plaintext: content.data }))),
  reloadKeys: Effect.void,
  size: 1,
  itemMicros: () => 350,
  pendingItems: () => 0
})

describe("the decryption pipeline's pace (turns of the event loop)", () => {
  it("30 POSTs of one item each, queued together, are published in order within a few turns, not one per turn", () => {
    const { scheduler, turn } = manualScheduler()
    const users = Array.from({ length: 30 }, (_, i) => `u-${i}`)
    const program = Effect.gen(function*() {
      const presences = yield* PubSub.unbounded<PushedPresence>()
      const published = yield* PubSub.subscribe(presences)
      const decryption = yield* makeDecryption(presences, 200, () => Effect.void).pipe(
        Effect.provideService(DecryptPool, pool),
        Effect.provideService(ValidationTokens, ValidationTokens.of({ verify: () => Effect.void, remembered: () => true }))
      )
      // Received now: within the flood gate's budget, so every item is decrypted.
      const receivedAt = yield* Clock.currentTimeMillis
      for (const id of users) {
        const rich = [richItem(id)]
        yield* decryptBatch(decryption, { items: rich, validationTokens: [], receivedAt, span: undefined }, rich)
      }
      const ids: Array<string> = []
      while (ids.length < users.length) ids.push(...(yield* PubSub.takeAll(published)).map((p) => p.userId))
      return ids
    }).pipe(Effect.scoped)
    const fiber = Effect.runFork(program, { scheduler })
    let turns = 0
    while (fiber.pollUnsafe() === undefined && turns < 1_000) {
      turn()
      turns++
    }
    const exit = fiber.pollUnsafe()
    assert.isDefined(exit)
    assert.deepStrictEqual(exit !== undefined && Exit.isSuccess(exit) ? exit.value : exit, users)
    // One POST per turn would take 30 turns and more; the hand-offs between the fibers take a few.
    assert.isAtMost(turns, 10, `${turns} turns`)
  })
})
