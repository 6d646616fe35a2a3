/**
 * Graph's presence limit, shared by every presence request of the application (protocols.md §1.4: 1,500 requests in
 * 30 s per application and tenant, reads and writes alike): a sliding window counted on the Clock. A request waits
 * for a place instead of failing, and a Retry-After that Graph sends pauses every request of the application until
 * it has passed. Presence reads (PresenceReader) and the presence sessions (PresenceSessions) take from the same one.
 */
import { Clock, Context, Deferred, Effect, Layer, Semaphore } from "effect"

export interface PresenceBudgetOptions {
  readonly requestsPerWindow: number
  readonly windowMillis: number
  /**
   * Added to the window: a request reaches Graph a little after it leaves, so a place that frees up on the
   * connector's clock may not have freed up on Graph's yet.
   */
  readonly marginMillis: number
}

export const defaultPresenceBudgetOptions: PresenceBudgetOptions = { requestsPerWindow: 1500, windowMillis: 30_000, marginMillis: 500 }

export interface BudgetUsage {
  readonly used: number
  readonly limit: number
  /** Clock milliseconds until which Graph asked to wait (Retry-After), if that is still ahead. */
  readonly pausedUntil?: number | undefined
}

/**
 * The limiter itself. A request holds its place in the window from the moment it is let through until Graph has
 * answered it, and then for the window from the answer: Graph counts a request when it arrives, which is between the
 * two, so the connector's count is never below Graph's — however long a request waits on the way.
 */
export const makeBudget = Effect.fnUntraced(function*(options: PresenceBudgetOptions) {
  const lock = yield* Semaphore.make(1)
  const window = options.windowMillis + options.marginMillis
  /** Answered requests by answer time, oldest first; requests in flight are only counted. */
  const answered: Array<number> = []
  let inFlight = 0
  let pausedUntil = 0
  let answeredSignal = yield* Deferred.make<void>()

  const prune = (now: number) => {
    while (answered.length > 0 && answered[0]! <= now - window) answered.shift()
  }

  /** Waits for a place and takes it (in flight until `done`). */
  const enter = lock.withPermits(1)(Effect.gen(function*() {
    while (true) {
      const now = yield* Clock.currentTimeMillis
      if (now < pausedUntil) {
        yield* Effect.sleep(pausedUntil - now)
        continue
      }
      prune(now)
      if (answered.length + inFlight < options.requestsPerWindow) {
        inFlight++
        return
      }
      // A place frees up when the oldest answer leaves the window, or when a request in flight is answered (its
      // answer may be older than what the window holds).
      const signal = answeredSignal
      yield* answered.length > 0
        ? Effect.raceFirst(Effect.sleep(answered[0]! + window - now), Deferred.await(signal))
        : Deferred.await(signal)
    }
  }))

  const done = Effect.gen(function*() {
    inFlight--
    answered.push(yield* Clock.currentTimeMillis)
    const signal = answeredSignal
    answeredSignal = yield* Deferred.make<void>()
    yield* Deferred.succeed(signal, undefined)
  })

  /** Runs `request` inside the budget: it waits for a place, and its place counts until the window after its answer. */
  const run = <A, E, R>(request: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.andThen(enter, Effect.ensuring(request, done))

  const pauseFor = (millis: number) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      pausedUntil = Math.max(pausedUntil, now + millis)
    })

  const usage = Effect.map(Clock.currentTimeMillis, (now): BudgetUsage => ({
    used: answered.filter((at) => at > now - window).length + inFlight,
    limit: options.requestsPerWindow,
    ...(pausedUntil > now ? { pausedUntil } : {})
  }))

  return { run, pauseFor, usage }
})

export class PresenceBudget extends Context.Service<PresenceBudget, {
  /** Runs a presence request once it fits (and any Retry-After has passed); it counts until the window after its answer. */
  readonly run: <A, E, R>(request: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Graph answered 429/503 with Retry-After: no presence request of the application leaves before it has passed. */
  readonly pauseFor: (millis: number) => Effect.Effect<void>
  readonly usage: Effect.Effect<BudgetUsage>
}>()("teams-presence-connector/graph/sessions/PresenceBudget") {
  static readonly layerWith = (options: Partial<PresenceBudgetOptions>) =>
    Layer.effect(PresenceBudget, Effect.map(makeBudget({ ...defaultPresenceBudgetOptions, ...options }), PresenceBudget.of))

  static readonly layer = PresenceBudget.layerWith({})
}
