/**
 * Graph's presence limit, shared by every presence request of the application (protocols.md §1.4: 1,500 requests in
 * 30 s per application and tenant, reads and writes alike): a sliding window counted on the Clock. A request waits
 * for a place instead of failing, and a Retry-After that Graph sends pauses every request of the application until
 * it has passed. Presence reads (PresenceReader) and the presence sessions (PresenceSessions) take from the same one.
 */
import { Clock, Context, Effect, Layer, Semaphore } from "effect"

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

/** The limiter itself, without the service: PresenceReader makes one of its own when no budget is shared. */
export const makeBudget = Effect.fnUntraced(function*(options: PresenceBudgetOptions) {
  const lock = yield* Semaphore.make(1)
  const sent: Array<number> = []
  const window = options.windowMillis + options.marginMillis
  let pausedUntil = 0

  const take = lock.withPermits(1)(Effect.gen(function*() {
    while (true) {
      const now = yield* Clock.currentTimeMillis
      if (now < pausedUntil) {
        yield* Effect.sleep(pausedUntil - now)
        continue
      }
      while (sent.length > 0 && sent[0]! <= now - window) sent.shift()
      if (sent.length < options.requestsPerWindow) {
        sent.push(now)
        return
      }
      yield* Effect.sleep(sent[0]! + window - now)
    }
  }))

  const pauseFor = (millis: number) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      pausedUntil = Math.max(pausedUntil, now + millis)
    })

  const usage = Effect.map(Clock.currentTimeMillis, (now): BudgetUsage => ({
    used: sent.filter((at) => at > now - window).length,
    limit: options.requestsPerWindow,
    ...(pausedUntil > now ? { pausedUntil } : {})
  }))

  return { take, pauseFor, usage }
})

export class PresenceBudget extends Context.Service<PresenceBudget, {
  /** Waits until one more presence request fits (and any Retry-After has passed), then counts it. */
  readonly take: Effect.Effect<void>
  /** Graph answered 429/503 with Retry-After: no presence request of the application leaves before it has passed. */
  readonly pauseFor: (millis: number) => Effect.Effect<void>
  readonly usage: Effect.Effect<BudgetUsage>
}>()("teams-presence-connector/graph/sessions/PresenceBudget") {
  static readonly layerWith = (options: Partial<PresenceBudgetOptions>) =>
    Layer.effect(PresenceBudget, Effect.map(makeBudget({ ...defaultPresenceBudgetOptions, ...options }), PresenceBudget.of))

  static readonly layer = PresenceBudget.layerWith({})
}
