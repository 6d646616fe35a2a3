/**
 * Clock-driven repetition shared by renewals, reconciliation and polling, plus the poll interval that keeps
 * getPresencesByUserId inside Graph's 1,500 requests / 30 s (protocols.md §1.4).
 */
import { Clock, Effect } from "effect"

/** Runs `effect` every `intervalMillis`, anchored at the start so slow runs do not drift the schedule (TestClock-drivable). */
export const every = Effect.fnUntraced(function*<E, R>(intervalMillis: number, effect: Effect.Effect<void, E, R>): Effect.fn.Return<never, E, R> {
  const start = yield* Clock.currentTimeMillis
  let k = 1
  while (true) {
    const now = yield* Clock.currentTimeMillis
    k = Math.max(k, Math.floor((now - start) / intervalMillis) + 1)
    yield* Effect.sleep(start + k * intervalMillis - now)
    yield* effect
    k++
  }
})

/** Requests Graph allows per app and tenant in 30 s; polling uses at most `share` of it, leaving room for other reads. */
export const PRESENCE_REQUESTS_PER_30S = 1_500

/**
 * The poll interval for `userCount` users: the configured one, stretched when one round (⌈n/650⌉ requests) would
 * exceed `share` of the budget.
 */
export const pollIntervalMillis = (pollSeconds: number, userCount: number, share = 0.8): number => {
  const requestsPerRound = Math.max(1, Math.ceil(userCount / 650))
  const minimumSeconds = (30 * requestsPerRound) / (PRESENCE_REQUESTS_PER_30S * share)
  return Math.ceil(Math.max(pollSeconds, minimumSeconds) * 1000)
}
