/**
 * The inbox's processor: one batch at a time, in arrival order. A batch that arrives while the processor is idle and
 * nothing is queued before it is processed at once in the fiber that accepted it (the POST's), rather than queued for
 * the processor's fiber: a queued batch waits for a later turn of the event loop (the queue resumes its taker from
 * the scheduler), and with many tenants nearly every POST is one item of a tenant whose processor is idle — one turn
 * more per change, and a chunk for the decrypt workers that misses the turn's message to them (DecryptWorkers.ts).
 * Only small batches (`maxItemsAtOnce`), and only where processing never waits (the flood fallback on: every queue
 * behind it is unbounded); a batch taken at once that does wait (a fiber's operation budget) holds the queued ones
 * back until it ends, so the order stays.
 */
import { Effect, Latch, Queue, type Scope } from "effect"
import { drainQueued } from "./Decryption.ts"
import type { Batch } from "./Intake.ts"

/**
 * The most items a batch may have to be processed at once: its processing comes before the POST's 202, and the turn it
 * saves matters where POSTs are small and many (many tenants). A flood's POSTs of 100 items go through the queue as
 * before (taken at once, they moved rich-flood-10k's webhook handler p50 from 0.9 to 1.6 ms: docs/performance.md,
 * "Sixth round").
 */
export const maxItemsAtOnce = 16

export interface Processor {
  /** Processes `batch` now when nothing is queued or being processed before it; false when it is to be queued. */
  readonly processNow: (batch: Batch) => Effect.Effect<boolean>
}

/** Forks the processor's loop over `queue` into the scope; `atOnce` = whether a batch may be processed in its caller's fiber. */
export const makeProcessor = Effect.fnUntraced(function*(
  queue: Queue.Dequeue<Batch>,
  process: (batch: Batch) => Effect.Effect<void>,
  atOnce: boolean
): Effect.fn.Return<Processor, never, Scope.Scope> {
  const lane = { busy: false, free: Latch.makeUnsafe(true) }
  const enter = () => {
    lane.busy = true
    Latch.closeUnsafe(lane.free)
  }
  const leave = Effect.sync(() => {
    lane.busy = false
    Latch.openUnsafe(lane.free)
  })
  const processQueued = (batch: Batch): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (!lane.busy) {
        enter()
        return Effect.ensuring(process(batch), leave)
      }
      // A batch taken at once is still being processed: this one goes after it.
      return Effect.andThen(Latch.await(lane.free), processQueued(batch))
    })
  yield* Queue.take(queue).pipe(Effect.flatMap(processQueued), Effect.forever(drainQueued), Effect.forkScoped)
  return {
    processNow: (batch) =>
      Effect.suspend(() => {
        const behind = lane.busy || Queue.sizeUnsafe(queue) > 0
        if (!atOnce || behind || batch.items.length > maxItemsAtOnce) return Effect.succeed(false)
        enter()
        // Uninterruptible: the POST's fiber ending (its client gone) must not cut a batch already accepted in half.
        return Effect.as(Effect.ensuring(Effect.uninterruptible(process(batch)), leave), true)
      })
  }
})
