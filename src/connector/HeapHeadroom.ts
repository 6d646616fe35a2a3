/**
 * Whether V8's heap limit fits the users the plan serves. The connector's live heap grows with the served users
 * (docs/performance.md, "Scale"); when it takes more than half the limit, the garbage collector runs almost all the
 * time (at 50,000 users under the shipped 224 MB: 28 % of a core while idle) and a little more ends in "heap out of
 * memory". So at every plan the limit is compared with the formula, and a warning names the flag to start with.
 */
import { Effect, Layer, Stream, SubscriptionRef } from "effect"
import { getHeapStatistics } from "node:v8"
import { PlanState } from "./PlanState.ts"

/** Live heap after a full collection (MB): measured at 1,000–50,000 users on the bench (docs/performance.md). */
export const expectedLiveHeapMb = (users: number): number => 55 + 2.8 * (users / 1000)

/** V8's limit beyond `--max-old-space-size`: the young generation with `--max-semi-space-size=8` (MB). */
const youngGenerationMb = 36

/** The `--max-old-space-size` (MB) for `users`: twice the expected live heap, never below the shipped 224. */
export const recommendedOldSpaceMb = (users: number): number =>
  Math.max(224, Math.ceil((2 * expectedLiveHeapMb(users) - youngGenerationMb) / 8) * 8)

/** The advice for `users` under a heap limit of `limitMb` (V8's `heap_size_limit`), or undefined when it fits. */
export const heapAdvice = (users: number, limitMb: number) => {
  const live = expectedLiveHeapMb(users)
  if (live <= limitMb / 2) return undefined
  const recommended = recommendedOldSpaceMb(users)
  return {
    recommended,
    message: `the heap limit (${Math.round(limitMb)} MB) is too small for ${users} served users: their live heap is ` +
      `≈ ${Math.round(live)} MB, more than half the limit, so the garbage collector would run almost continuously. ` +
      `Start the connector with --max-old-space-size=${recommended} (npm start: CONNECTOR_HEAP_MB=${recommended}); ` +
      `docs/operations.md, "Memory"`
  }
}

const limitMb = (): number => getHeapStatistics().heap_size_limit / (1024 * 1024)

/** Checks the limit at every new plan; warns once per recommended size (again only when more users need more). */
export const HeapHeadroomLayer = Layer.effectDiscard(Effect.gen(function*() {
  const state = yield* PlanState
  let warnedFor = 0
  yield* SubscriptionRef.changes(state.plan).pipe(
    Stream.runForEach((plan) =>
      Effect.suspend(() => {
        const advice = plan.ready ? heapAdvice(plan.synced.length, limitMb()) : undefined
        if (advice === undefined || advice.recommended <= warnedFor) return Effect.void
        warnedFor = advice.recommended
        return Effect.logWarning(advice.message).pipe(Effect.annotateLogs({ logKey: "heap-limit" }))
      })
    ),
    Effect.forkScoped
  )
}))
