/**
 * The requests of one PBX connection that wait for their answer, by `src` (protocols.md §2.2): each completes exactly
 * once — with the PBX's result or refusal, a timeout, or the connection's end. One sweeper per connection fails the
 * requests whose deadline passed, instead of a timer (a raced sleep fiber) per request: at burst rates that was
 * thousands of timers a second. A request fails between its deadline and one sweep later.
 */
import { Clock, Deferred, Effect, Schema, type Scope } from "effect"
import { type Envelope, ResultError } from "./PbxMessages.ts"

export class PbxRequestError extends Schema.TaggedError<PbxRequestError>()("PbxRequestError", {
  pbx: Schema.String,
  mt: Schema.String,
  reason: Schema.Literals(["timeout", "disconnected", "error"]),
  message: Schema.String
}) {}

export type RequestOutcome =
  | { readonly _tag: "Answered"; readonly result: Record<string, unknown> }
  | { readonly _tag: "Failed"; readonly error: PbxRequestError }

const decodeResultError = Schema.decodeUnknownOption(ResultError)

/** The PBX's refusal in a result, if it carries one. */
const resultErrorText = (message: Record<string, unknown>): string | undefined => {
  const result = decodeResultError(message)
  if (result._tag === "None") return undefined
  const { error, errorText } = result.value
  const failed = (error !== undefined && error !== false && error !== 0 && error !== "") ||
    (errorText !== undefined && errorText !== "")
  return failed ? (errorText ?? `error ${String(error)}`) : undefined
}

interface PendingRequest {
  readonly complete: (outcome: RequestOutcome) => void
  /** Clock milliseconds after which the request fails as a timeout. */
  readonly deadline: number
  readonly mt: string
}

export interface PendingRequests {
  /**
   * Registers a request under a fresh `src` and returns it; when the connection has ended, completes it at once as
   * "disconnected" and returns undefined. The check and the registration are one synchronous step, so no request is
   * left waiting on a connection whose sweeper has stopped.
   */
  readonly register: (mt: string, onResult: (outcome: RequestOutcome) => void, now: number) => string | undefined
  /** Routes a result to its waiting request; false when no request waits for that `src`. */
  readonly complete: (envelope: Envelope, message: Record<string, unknown>) => boolean
  /** Fails every waiting request; called once, after `closed` is completed. */
  readonly failAll: (reason: string) => void
}

export const makePendingRequests = Effect.fnUntraced(function*(options: {
  readonly id: number
  readonly pbx: string
  readonly requestTimeoutMs: number
  readonly closed: Deferred.Deferred<string>
}): Effect.fn.Return<PendingRequests, never, Scope.Scope> {
  const pending = new Map<string, PendingRequest>()
  let counter = 0
  const fail = (mt: string, reason: PbxRequestError["reason"], message: string): RequestOutcome => ({
    _tag: "Failed",
    error: new PbxRequestError({ pbx: options.pbx, mt, reason, message })
  })

  const sweepEveryMs = Math.max(1, Math.min(1_000, Math.floor(options.requestTimeoutMs / 4)))
  const sweep = Effect.map(Clock.currentTimeMillis, (now) => {
    for (const [src, waiting] of pending) {
      if (waiting.deadline > now) continue
      pending.delete(src)
      waiting.complete(fail(waiting.mt, "timeout", `PBX ${options.pbx} did not answer ${waiting.mt} within ${options.requestTimeoutMs} ms`))
    }
  })
  yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(sweepEveryMs), Effect.suspend(() => (pending.size === 0 ? Effect.void : sweep)))))

  return {
    register: (mt, onResult, now) => {
      if (Deferred.isDoneUnsafe(options.closed)) {
        onResult(fail(mt, "disconnected", `PBX ${options.pbx} is not connected; ${mt} was not sent`))
        return undefined
      }
      const src = `${mt}-${options.id}-${++counter}`
      pending.set(src, { complete: onResult, deadline: now + options.requestTimeoutMs, mt })
      return src
    },
    complete: (envelope, message) => {
      const waiting = envelope.src === undefined ? undefined : pending.get(envelope.src)
      if (waiting === undefined) return false
      pending.delete(envelope.src!)
      // An answer that carries an `error` is the PBX refusing the request.
      const errorText = resultErrorText(message)
      waiting.complete(
        errorText === undefined
          ? { _tag: "Answered", result: message }
          : fail(waiting.mt, "error", `PBX ${options.pbx} refused ${waiting.mt}: ${errorText}`)
      )
      return true
    },
    failAll: (reason) => {
      for (const [src, waiting] of pending) {
        pending.delete(src)
        waiting.complete(fail(waiting.mt, "disconnected", `PBX ${options.pbx} disconnected before answering: ${reason}`))
      }
    }
  }
})
