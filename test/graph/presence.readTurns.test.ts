/**
 * A read's changes go on a chunk at a time (PresenceSource.ts `changesPerTurn`), each chunk in a turn of its own: in a
 * flood a read of hundreds of users would otherwise hold the main thread while all of them are mapped and written,
 * with the webhook's POSTs and the decrypt workers' answers waiting behind it, and its last users' writes behind its
 * first (docs/performance.md, "rich-flood-10k in the whole bench").
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import type { GraphPresence } from "../../src/domain/Presence.ts"
import { PresenceReader } from "../../src/graph/presence/PresenceReader.ts"
import { changesPerTurn } from "../../src/graph/presence/PresenceSource.ts"
import { buildPushSource } from "./harness.ts"
import { richWebhook } from "./notificationsHarness.ts"

const presence = (id: string, availability: "Available" | "Busy"): GraphPresence => ({ id, availability, activity: availability })

describe("a read's changes, a chunk per turn", () => {
  it.live("a read of 120 changed users reaches the flow as chunks of 50, 50 and 20: the flow runs between them", () =>
    Effect.gen(function*() {
      const { context } = yield* richWebhook({ maxBodyBytes: 64 * 1024, floodLatencyBudgetMillis: 0 })
      const users = Array.from({ length: 120 }, (_, i) => `reader-${i}`)
      let answer: "Available" | "Busy" = "Available"
      const reader = Layer.succeed(PresenceReader, PresenceReader.of({
        getPresences: (ids) => Effect.sync(() => ids.map((id) => presence(id, answer)))
      }))
      const source = yield* buildPushSource(Layer.merge(Layer.succeedContext(context), reader))
      yield* source.initialSync(users)
      answer = "Busy"
      // The flow's view: the size of each array it is handed (all 120 in one when the read publishes them at once).
      const seen: Array<number> = []
      yield* Effect.forkScoped(
        Stream.runForEachArray(
          source.changes.pipe(Stream.filter((change) => change.presence.availability === "Busy")),
          (changes) => Effect.sync(() => void seen.push(changes.length))
        ),
        { startImmediately: true }
      )
      yield* source.reconcileNow
      while (seen.reduce((sum, size) => sum + size, 0) < users.length) yield* Effect.yieldNow
      assert.strictEqual(changesPerTurn, 50)
      assert.deepStrictEqual(seen, [50, 50, 20])
    }).pipe(Effect.scoped))
})
