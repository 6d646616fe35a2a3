/**
 * One logged-in AppWebsocket connection from a PBX: sends messages on its socket (SocketLink.ts), correlates requests
 * with their results by `src` (protocols.md §2.2) — each completes exactly once, with the PBX's result or refusal, a
 * timeout, or the connection's end — and publishes the PBX's other messages (replication pushes, indications) to
 * whoever follows them.
 */
import { Clock, Deferred, Effect, PubSub, Schema, type Scope } from "effect"
import { type AppLogin, type Envelope, type PbxInfo, type PbxMessage, ResultError } from "./PbxMessages.ts"

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

/** The PBX's refusal in a result, if it carries one. A result with neither member (every accepted write) decodes to nothing. */
const resultErrorText = (message: Record<string, unknown>): string | undefined => {
  if (message.error === undefined && message.errorText === undefined) return undefined
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

interface PendingRequests {
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

/**
 * The requests waiting for their answer. One sweeper per connection fails those whose deadline passed, instead of a
 * timer (a raced sleep fiber) per request: at burst rates that was thousands of timers a second. A request fails
 * between its deadline and one sweep later.
 */
const makePendingRequests = Effect.fnUntraced(function*(options: {
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

/** A message from the PBX that is not the result of a request: a replication push or an indication. */
export interface PbxIndication {
  readonly envelope: Envelope
  readonly message: unknown
}

export interface PbxConnection {
  /** Distinguishes successive connections of the same PBX. */
  readonly id: number
  readonly pbx: string
  readonly isMaster: boolean
  readonly login: AppLogin
  readonly connectedAt: number
  /** Completed when the PBX sends PbxInfo. */
  readonly pbxInfo: Deferred.Deferred<PbxInfo>
  /** Completed with the reason when the connection ends. */
  readonly closed: Deferred.Deferred<string>
  readonly send: (message: PbxMessage) => Effect.Effect<void>
  /** Sends with a fresh `src` and waits for the `<mt>Result` carrying it; an `error` in the result fails. */
  readonly request: (message: PbxMessage) => Effect.Effect<Record<string, unknown>, PbxRequestError>
  /**
   * `request` without a waiting fiber: sends, and calls `onResult` exactly once — with the result, the PBX's refusal,
   * a timeout or the connection's end. The callback runs synchronously inside whichever fiber completes the request,
   * so it must only record the outcome (the presence writer queues it for its own fiber).
   */
  readonly requestWith: (message: PbxMessage, onResult: (outcome: RequestOutcome) => void) => Effect.Effect<void>
  readonly indications: PubSub.PubSub<PbxIndication>
  readonly close: (reason: string) => Effect.Effect<void>
}

export interface ConnectionInternals {
  readonly connection: PbxConnection
  /** Routes a result to its waiting request; false when no request waits for that `src`. */
  readonly completeRequest: (envelope: Envelope, message: Record<string, unknown>) => Effect.Effect<boolean>
  /** `completeRequest` run at once, for the message loop's answers of a burst (the request's callback only records). */
  readonly completeRequestNow: (envelope: Envelope, message: Record<string, unknown>) => boolean
  /** Fails every waiting request; called once when the connection ends. */
  readonly shutdown: (reason: string) => Effect.Effect<void>
}

/** Where a connection's frames go: its socket. */
export interface Outbound {
  readonly write: (text: string) => Effect.Effect<void>
  readonly close: (reason: string) => Effect.Effect<void>
}

export const makeConnection = Effect.fnUntraced(function*(options: {
  readonly id: number
  readonly pbx: string
  readonly isMaster: boolean
  readonly login: AppLogin
  readonly connectedAt: number
  readonly requestTimeoutMs: number
  readonly outbound: Outbound
}): Effect.fn.Return<ConnectionInternals, never, Scope.Scope> {
  const closed = yield* Deferred.make<string>()
  const indications = yield* PubSub.unbounded<PbxIndication>()
  const pending = yield* makePendingRequests({ id: options.id, pbx: options.pbx, requestTimeoutMs: options.requestTimeoutMs, closed })
  const send = (message: PbxMessage) => options.outbound.write(JSON.stringify(message))

  const requestWith = (message: PbxMessage, onResult: (outcome: RequestOutcome) => void): Effect.Effect<void> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const src = pending.register(message.mt, onResult, now)
      return src === undefined ? Effect.void : send({ ...message, src })
    })

  const request = Effect.fnUntraced(function*(message: PbxMessage) {
    const deferred = yield* Deferred.make<RequestOutcome>()
    yield* requestWith(message, (outcome) => Deferred.doneUnsafe(deferred, Effect.succeed(outcome)))
    const outcome = yield* Deferred.await(deferred)
    return outcome._tag === "Answered" ? outcome.result : yield* outcome.error
  })

  const connection: PbxConnection = {
    id: options.id,
    pbx: options.pbx,
    isMaster: options.isMaster,
    login: options.login,
    connectedAt: options.connectedAt,
    pbxInfo: yield* Deferred.make<PbxInfo>(),
    closed,
    send,
    request,
    requestWith,
    indications,
    close: options.outbound.close
  }
  return {
    connection,
    completeRequest: (envelope, message) => Effect.sync(() => pending.complete(envelope, message)),
    completeRequestNow: pending.complete,
    // `closed` first: a request registered from now on finds the connection closed instead of waiting.
    shutdown: (reason) =>
      Effect.andThen(Deferred.succeed(closed, reason), Effect.andThen(Effect.sync(() => pending.failAll(reason)), PubSub.shutdown(indications)))
  }
})
