/**
 * Presence reads that failed (a 429 or 503 storm that outlasted the Graph client's own retries) are not left to the
 * next reconcile: the users they were for are read again by one retry fiber, after a delay that doubles from
 * `readRetryFirstMillis` to `readRetryMaxMillis` and is never shorter than Graph's Retry-After. While users wait, the
 * state is published for the status page (the presence light turns amber, then red).
 */
import { Clock, Effect, Metric, Queue, SubscriptionRef } from "effect"
import { clip } from "../../domain/LogText.ts"
import { presenceReadsPending } from "../../domain/Metrics.ts"
import type { AuthError } from "../auth/AuthError.ts"
import type { GraphError } from "../client/GraphError.ts"

export type ReadHealth =
  | { readonly _tag: "Ok" }
  | {
    readonly _tag: "Failing"
    /** Users waiting for a successful read. */
    readonly users: number
    /** Clock milliseconds of the first failure of this spell. */
    readonly since: number
    readonly error: string
    readonly attempts: number
    /** The delay before the next try (at least Graph's Retry-After). */
    readonly retryInMillis: number
  }

export const describeReadError = (error: GraphError | AuthError): string =>
  error._tag === "GraphError"
    ? `${clip(error.code, 60)}${error.status > 0 ? ` (HTTP ${error.status})` : ""}`
    : clip(error.message, 200)

export const makeReadRetry = Effect.fnUntraced(function*(options: {
  readonly firstDelayMillis: number
  readonly maxDelayMillis: number
  /** Reads these users (one try, failing with Graph's error) and applies what it got. */
  readonly read: (ids: ReadonlyArray<string>) => Effect.Effect<void, GraphError | AuthError>
  /** Whether a user is still one to read (users may leave the plan while they wait). */
  readonly wanted: (id: string) => boolean
}) {
  const pending = new Set<string>()
  /** Taken out of `pending` by the retry fiber's current read. */
  let inFlight = 0
  const health = yield* SubscriptionRef.make<ReadHealth>({ _tag: "Ok" })
  const wake = yield* Queue.sliding<void>(1)
  let since: number | undefined
  let attempts = 0
  let error = ""
  let retryAfterMillis = 0

  const delay = () =>
    Math.min(options.maxDelayMillis, Math.max(options.firstDelayMillis * 2 ** Math.max(0, attempts - 1), retryAfterMillis))

  const publish = Effect.gen(function*() {
    const waiting = pending.size + inFlight
    yield* Metric.update(presenceReadsPending, waiting)
    const next: ReadHealth = waiting === 0 || since === undefined
      ? { _tag: "Ok" }
      : { _tag: "Failing", users: waiting, since, error, attempts, retryInMillis: delay() }
    yield* SubscriptionRef.set(health, next)
  })

  /** The read of `ids` failed: they are tried again. */
  const failed = Effect.fn("ReadRetry.failed")(function*(ids: ReadonlyArray<string>, cause: GraphError | AuthError) {
    for (const id of ids) pending.add(id)
    since ??= yield* Clock.currentTimeMillis
    attempts++
    error = describeReadError(cause)
    retryAfterMillis = cause._tag === "GraphError" ? cause.retryAfterMillis ?? 0 : 0
    yield* publish
    yield* Queue.offer(wake, undefined)
  })

  /** A read of `ids` succeeded (whichever path made it): they no longer wait. */
  const succeeded = Effect.fnUntraced(function*(ids: ReadonlyArray<string>) {
    if (since === undefined) return
    for (const id of ids) pending.delete(id)
    if (pending.size + inFlight > 0) return yield* publish
    since = undefined
    attempts = 0
    retryAfterMillis = 0
    yield* Effect.logInfo("presence reads succeed again")
    yield* publish
  })

  yield* Effect.gen(function*() {
    while (true) {
      yield* Queue.take(wake)
      while (pending.size > 0) {
        yield* Effect.sleep(delay())
        const ids = [...pending].filter(options.wanted)
        pending.clear()
        inFlight = ids.length
        yield* options.read(ids).pipe(
          Effect.ensuring(Effect.sync(() => void (inFlight = 0))),
          Effect.andThen(succeeded(ids)),
          Effect.catch((cause) =>
            Effect.logWarning(`reading ${ids.length} presences failed again (${describeReadError(cause)}); retrying`).pipe(
              Effect.annotateLogs({ logKey: "presence-read-retry" }),
              Effect.andThen(failed(ids, cause))
            )
          )
        )
      }
    }
  }).pipe(Effect.forkScoped)

  return { failed, succeeded, health }
})
