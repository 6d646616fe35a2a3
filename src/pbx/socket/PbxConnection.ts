/**
 * One logged-in AppWebsocket connection from a PBX: sends messages, correlates requests with their results by `src`
 * (with a timeout), and publishes the PBX's other messages (replication pushes, indications) to whoever follows them.
 */
import { Clock, Deferred, Effect, PubSub, Schema } from "effect"
import type { AppLogin, Envelope, PbxInfo } from "./PbxMessages.ts"
import { ResultError } from "./PbxMessages.ts"

export class PbxRequestError extends Schema.TaggedError<PbxRequestError>()("PbxRequestError", {
  pbx: Schema.String,
  mt: Schema.String,
  reason: Schema.Literals(["timeout", "disconnected", "error"]),
  message: Schema.String
}) {}

/** A message from the PBX that is not the result of a request: a replication push or an indication. */
export interface PbxIndication {
  readonly envelope: Envelope
  readonly message: unknown
}

export type RequestOutcome =
  | { readonly _tag: "Answered"; readonly result: Record<string, unknown> }
  | { readonly _tag: "Failed"; readonly error: PbxRequestError }

export type PbxMessage = { readonly mt: string; readonly api?: string; readonly [key: string]: unknown }

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
  /** Fails every waiting request; called once when the connection ends. */
  readonly shutdown: (reason: string) => Effect.Effect<void>
}

/** The parts of a Node stream that hold writes back: `cork` buffers, `uncork` sends what was buffered in one write. */
export interface Corkable {
  readonly cork: () => void
  readonly uncork: () => void
}

/**
 * Holds a stream's writes until the end of the current tick, so that the frames written in one tick (a wave of
 * SetPresence requests) leave in one `writev` instead of one syscall each. Call the returned function right before
 * each write; the first call in a tick corks, a `process.nextTick` uncorks. Corks nest, so the websocket library's own
 * cork/uncork around each frame only adds to ours. Order is kept (the stream's buffer is FIFO) and errors surface on
 * the stream as before. Without a stream (a request not served by Node's HTTP server) writes go out as they come.
 */
export const corkPerTick = (stream: Corkable | undefined): (() => void) => {
  if (stream === undefined) return () => {}
  let corked = false
  const release = () => {
    corked = false
    stream.uncork()
  }
  return () => {
    if (corked) return
    corked = true
    stream.cork()
    process.nextTick(release)
  }
}

const decodeResultError = Schema.decodeUnknownOption(ResultError)

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

export const makeConnection = Effect.fnUntraced(function*(options: {
  readonly id: number
  readonly pbx: string
  readonly isMaster: boolean
  readonly login: AppLogin
  readonly connectedAt: number
  readonly requestTimeoutMs: number
  readonly write: (text: string) => Effect.Effect<void>
  readonly close: (reason: string) => Effect.Effect<void>
}) {
  /** Requests waiting for their answer, by `src`, each with the Clock time after which it fails as a timeout. */
  const pending = new Map<string, PendingRequest>()
  const pbxInfo = yield* Deferred.make<PbxInfo>()
  const closed = yield* Deferred.make<string>()
  const indications = yield* PubSub.unbounded<PbxIndication>()
  let counter = 0

  const send = (message: PbxMessage) => options.write(JSON.stringify(message))

  const fail = (mt: string, reason: PbxRequestError["reason"], message: string): RequestOutcome => ({
    _tag: "Failed",
    error: new PbxRequestError({ pbx: options.pbx, mt, reason, message })
  })

  // One sweeper per connection fails the requests whose deadline passed, instead of a timer (a raced sleep fiber) per
  // request: at burst rates that was thousands of timers a second. A request fails between its deadline and one
  // sweep later.
  const sweepEveryMs = Math.max(1, Math.min(1_000, Math.floor(options.requestTimeoutMs / 4)))
  yield* Effect.gen(function*() {
    while (true) {
      yield* Effect.sleep(sweepEveryMs)
      if (pending.size === 0) continue
      const now = yield* Clock.currentTimeMillis
      for (const [src, waiting] of pending) {
        if (waiting.deadline > now) continue
        pending.delete(src)
        waiting.complete(fail(waiting.mt, "timeout", `PBX ${options.pbx} did not answer ${waiting.mt} within ${options.requestTimeoutMs} ms`))
      }
    }
  }).pipe(Effect.forkScoped)

  /** An answer that carries an `error` is the PBX refusing the request. */
  const outcomeOf = (mt: string, result: Record<string, unknown>): RequestOutcome => {
    const errorText = resultErrorText(result)
    return errorText === undefined
      ? { _tag: "Answered", result }
      : fail(mt, "error", `PBX ${options.pbx} refused ${mt}: ${errorText}`)
  }

  const requestWith = (message: PbxMessage, onResult: (outcome: RequestOutcome) => void): Effect.Effect<void> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      // The check and the registration are one synchronous step: either `shutdown` (which marks the connection closed
      // before it fails what is pending) finds this request, or this request finds the connection closed. No request
      // is left waiting on a connection whose sweeper has stopped.
      if (Deferred.isDoneUnsafe(closed)) {
        onResult(fail(message.mt, "disconnected", `PBX ${options.pbx} is not connected; ${message.mt} was not sent`))
        return Effect.void
      }
      const src = `${message.mt}-${options.id}-${++counter}`
      pending.set(src, { complete: onResult, deadline: now + options.requestTimeoutMs, mt: message.mt })
      return send({ ...message, src })
    })

  const request = (message: PbxMessage): Effect.Effect<Record<string, unknown>, PbxRequestError> =>
    Effect.gen(function*() {
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
    pbxInfo,
    closed,
    send,
    request,
    requestWith,
    indications,
    close: options.close
  }

  const completeRequest = (envelope: Envelope, message: Record<string, unknown>) =>
    Effect.suspend(() => {
      const waiting = envelope.src === undefined ? undefined : pending.get(envelope.src)
      if (waiting === undefined) return Effect.succeed(false)
      pending.delete(envelope.src!)
      waiting.complete(outcomeOf(waiting.mt, message))
      return Effect.succeed(true)
    })

  const shutdown = (reason: string) =>
    Effect.gen(function*() {
      yield* Deferred.succeed(closed, reason)
      for (const [src, waiting] of pending) {
        pending.delete(src)
        waiting.complete(fail(waiting.mt, "disconnected", `PBX ${options.pbx} disconnected before answering: ${reason}`))
      }
      yield* PubSub.shutdown(indications)
    })

  return { connection, completeRequest, shutdown } satisfies ConnectionInternals
})
