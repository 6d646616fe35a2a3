/**
 * The expiry a presence subscription asks for. Graph refuses a create or renewal beyond the resource's maximum
 * (60 minutes for presence), measured on Graph's clock: the connector asks for less (`presenceExpiryMinutes`, 58 by
 * default) so that a skewed clock does not make every renewal fail, and when Graph still answers 400 it asks once more
 * for a clearly shorter expiry, and says so in the log (docs/protocol-notes.md, "Subscription expiry").
 */
import { Clock, Effect } from "effect"
import { describeError, type SubscriptionCallError } from "./SubscriptionApi.ts"
import { isoIn } from "./SubscriptionState.ts"

/** Graph's maximum for presence subscriptions, in minutes. */
export const presenceMaxMinutes = 60

/**
 * The expiry of the one retry after a 400: half the configured one, but still past the next renewal (with five
 * minutes to spare), and never longer than the first request.
 */
export const shorterExpiryMinutes = (expiryMinutes: number, renewMinutes: number): number =>
  Math.min(expiryMinutes - 1, Math.max(renewMinutes + 5, Math.floor(expiryMinutes / 2)))

export const isBadRequest = (error: SubscriptionCallError): boolean => error._tag === "GraphError" && error.status === 400

/**
 * Calls `request` with an expiry `expiryMinutes` from now; on a 400 calls it once more with the shorter expiry.
 * `what` names the call in the log line ("creating", "renewing").
 */
export const withExpiryRetry = Effect.fnUntraced(function*<A>(
  options: { readonly what: string; readonly expiryMinutes: number; readonly renewMinutes: number },
  request: (expirationDateTime: string) => Effect.Effect<A, SubscriptionCallError>
): Effect.fn.Return<A, SubscriptionCallError> {
  const first = yield* request(isoIn(yield* Clock.currentTimeMillis, options.expiryMinutes)).pipe(Effect.result)
  if (first._tag === "Success") return first.success
  if (!isBadRequest(first.failure)) return yield* first.failure
  const shorter = shorterExpiryMinutes(options.expiryMinutes, options.renewMinutes)
  if (shorter < 1 || shorter >= options.expiryMinutes) return yield* first.failure
  yield* Effect.logWarning(
    `Graph refused ${options.what} the presence subscription with an expiry of ${options.expiryMinutes} min ` +
      `(${describeError(first.failure)}); retrying once with ${shorter} min. If this repeats, check this server's clock ` +
      `(NTP) or lower timers.presenceExpiryMinutes`
  )
  return yield* request(isoIn(yield* Clock.currentTimeMillis, shorter))
})
