/**
 * One logged-in AppWebsocket connection from a PBX: sends messages on its socket (SocketLink.ts), correlates requests
 * with their results by `src` (PendingRequests.ts, with a timeout), and publishes the PBX's other messages
 * (replication pushes, indications) to whoever follows them.
 */
import { Clock, Deferred, Effect, PubSub, type Scope } from "effect"
import type { AppLogin, Envelope, PbxInfo, PbxMessage } from "./PbxMessages.ts"
import { makePendingRequests, type PbxRequestError, type RequestOutcome } from "./PendingRequests.ts"

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
    // `closed` first: a request registered from now on finds the connection closed instead of waiting.
    shutdown: (reason) =>
      Effect.andThen(Deferred.succeed(closed, reason), Effect.andThen(Effect.sync(() => pending.failAll(reason)), PubSub.shutdown(indications)))
  }
})
