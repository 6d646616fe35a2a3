/** Shared helpers of the tests that run whole processes and simulators over real sockets. */
import { Effect } from "effect"
import { freePort as freePortOn } from "../../src/http/Server.ts"

/** Re-checks `check` every 50 ms until it yields a value; dies with `what` after `timeoutMs` (a bound, not a pacing). */
export const until = <A>(what: string, check: Effect.Effect<A | undefined>, timeoutMs = 20_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const value = yield* check
      if (value !== undefined) return value
      yield* Effect.sleep("50 millis")
    }
    return yield* Effect.die(new Error(`timed out waiting for ${what}`))
  })

/** A 127.0.0.1 port that was free a moment ago. */
export const freePort = freePortOn("127.0.0.1")

export const basicAuth = (password: string, user = "admin"): string =>
  "Basic " + Buffer.from(`${user}:${password}`).toString("base64")

/**
 * Waits on what a test records (requests started, reads, confirmations) without polling: `until(check)` resumes once
 * `check` holds, checked at once and again at each `recorded()`.
 */
export const makeRecordedWaits = () => {
  const checks = new Set<() => void>()
  const recorded = () => {
    for (const check of [...checks]) check()
  }
  const until = (check: () => boolean) =>
    Effect.callback<void>((resume) => {
      const attempt = () => {
        if (!check()) return
        checks.delete(attempt)
        resume(Effect.void)
      }
      checks.add(attempt)
      attempt()
      return Effect.sync(() => checks.delete(attempt))
    })
  return { recorded, until }
}
