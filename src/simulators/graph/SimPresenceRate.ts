/**
 * Graph's presence limit (protocols.md §1.4): all presence requests of one application in one tenant — reads
 * (getPresencesByUserId) and writes (setPresence, clearPresence, setUserPreferredPresence) — share one budget per
 * window; a request over it is answered 429 with the seconds until a place frees up as Retry-After.
 */
import { Clock, Effect } from "effect"
import { SimHttpError } from "./SimHttp.ts"

export interface SimPresenceRate {
  /** Counts one presence request of `appId`, or fails with a 429 when the window is full. */
  checkPresenceRate(appId: string, limit: number, windowMillis: number): Effect.Effect<void, SimHttpError>
}

export const makeSimPresenceRate = (onThrottled: () => void): SimPresenceRate => {
  const calls = new Map<string, Array<number>>()
  return {
    checkPresenceRate: (appId, limit, windowMillis) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const recent = (calls.get(appId) ?? []).filter((at) => at > now - windowMillis)
        calls.set(appId, recent)
        if (recent.length >= limit) {
          onThrottled()
          const waitSeconds = Math.max(0.001, (recent[0]! + windowMillis - now) / 1000)
          return yield* new SimHttpError({
            status: 429,
            code: "TooManyRequests",
            message: "Please retry again later.",
            retryAfterSeconds: Math.round(waitSeconds * 1000) / 1000
          })
        }
        recent.push(now)
      })
  }
}
