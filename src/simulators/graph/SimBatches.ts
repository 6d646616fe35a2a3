/**
 * The simulated Graph's batching of change notifications: changes are collected for a window after the first one
 * arrives (or until `maxBatch` are waiting) and then handed on together, so that one POST carries several items.
 * Microsoft Learn documents that a POST may carry several items, not how Graph groups them; the window and the size
 * are the simulator's choice (SimDelivery.ts `DeliveryOptions`).
 *
 * A plain buffer and one fiber that sleeps out each window (on the Clock, so TestClock drives it), fed by one fiber per
 * source that takes everything published since its last turn: with many simulated tenants each POST carries one or
 * two changes, and a stream stage per change cost the simulator more than the change itself (docs/performance.md,
 * "Fifth round: the simulators' cost per change").
 */
import { Effect, Latch } from "effect"

export interface BatchRules {
  readonly batchWindowMillis: number
  readonly maxBatch: number
}

/**
 * Collects what `sources` yield (each waits for changes and returns all that are there) and runs `handle` on each
 * batch: at most `maxBatch` changes, handed on when the window that opened with the batch's first change has passed,
 * or at once when `maxBatch` are waiting. `handle` runs in the batching fibers, one batch after another; it should
 * fork what waits (the POSTs). Runs until its scope closes.
 */
export const batchChanges = Effect.fnUntraced(function*<A>(
  sources: ReadonlyArray<Effect.Effect<ReadonlyArray<A>>>,
  rules: BatchRules,
  handle: (batch: ReadonlyArray<A>) => Effect.Effect<void>
) {
  const waiting: Array<A> = []
  const windowOpen = Latch.makeUnsafe(false)
  const take = (source: Effect.Effect<ReadonlyArray<A>>) =>
    Effect.forever(Effect.flatMap(source, (changes) => {
      for (const change of changes) waiting.push(change)
      // Full batches leave at once; what is left waits for the window (opened by its first change).
      const full: Array<ReadonlyArray<A>> = []
      while (waiting.length >= rules.maxBatch) full.push(waiting.splice(0, rules.maxBatch))
      if (waiting.length > 0) windowOpen.openUnsafe()
      return full.length === 0 ? Effect.void : Effect.forEach(full, handle, { discard: true })
    }))
  const windows = Effect.forever(Effect.gen(function*() {
    yield* windowOpen.await
    yield* Effect.sleep(rules.batchWindowMillis)
    windowOpen.closeUnsafe()
    const batch = waiting.splice(0)
    for (let from = 0; from < batch.length; from += rules.maxBatch) yield* handle(batch.slice(from, from + rules.maxBatch))
  }))
  for (const source of sources) yield* Effect.forkScoped(take(source))
  yield* Effect.forkScoped(windows)
})
