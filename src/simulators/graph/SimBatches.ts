/**
 * The simulated Graph's batching of change notifications: changes are collected for a window after the first one
 * arrives (or until `maxBatch` are waiting) and then handed on together, so that one POST carries several items.
 * Microsoft Learn documents that a POST may carry several items, not how Graph groups them; the window and the size
 * are the simulator's choice (SimDelivery.ts `DeliveryOptions`).
 *
 * Changes are pushed synchronously (by the directory's listeners, SimUsers.ts) into a plain buffer, and one fiber
 * sleeps out each window on the Clock (so TestClock drives it): with many simulated tenants each POST carries one or
 * two changes, and a stream stage, or a fiber woken per change, cost the simulator more than the change itself
 * (docs/performance.md, "Fifth round: the simulators' cost per change" and "tenants-50: the simulators' cost, second
 * round").
 */
import { Effect, FiberSet, Latch } from "effect"

export interface BatchRules {
  readonly batchWindowMillis: number
  readonly maxBatch: number
}

/**
 * Runs `handle` on each batch of what the returned function is given: at most `maxBatch` changes, handed on when the
 * window that opened with the batch's first change has passed, or at once (in a fiber of its own) when `maxBatch` are
 * waiting. Window batches are handled one after another in the window's fiber; `handle` should fork what waits (the
 * POSTs). Runs until its scope closes.
 */
export const batchChanges = Effect.fnUntraced(function*<A>(rules: BatchRules, handle: (batch: ReadonlyArray<A>) => Effect.Effect<void>) {
  const waiting: Array<A> = []
  const windowOpen = Latch.makeUnsafe(false)
  const runFull = yield* FiberSet.makeRuntime<never, void, never>()
  const push = (change: A): void => {
    waiting.push(change)
    // A full batch leaves at once; what is left waits for the window (opened by its first change).
    if (waiting.length >= rules.maxBatch) runFull(handle(waiting.splice(0, rules.maxBatch)))
    else windowOpen.openUnsafe()
  }
  const windows = Effect.forever(Effect.gen(function*() {
    yield* windowOpen.await
    yield* Effect.sleep(rules.batchWindowMillis)
    windowOpen.closeUnsafe()
    const batch = waiting.splice(0)
    for (let from = 0; from < batch.length; from += rules.maxBatch) yield* handle(batch.slice(from, from + rules.maxBatch))
  }))
  yield* Effect.forkScoped(windows)
  return push
})
