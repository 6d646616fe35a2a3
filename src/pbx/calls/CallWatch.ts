/**
 * Watches the calls of a set of PBX users and tells who is on the phone. Each user is watched on the connection of
 * the PBX the user is registered at (`loc`), else the master's — the PBX that knows the user's calls (protocols.md
 * §2.6). Watching starts again whenever a PBX logs in, when a user moves to another PBX or is renamed, and for a
 * request the PBX did not answer; a user the PBX refused is asked again after a while. While a user's PBX is not
 * connected the user counts as not on the phone. The output is a stream of changes, "user U is / is not in a call".
 * The state and its steps are in WatchBook.ts.
 */
import { Context, Deferred, Effect, Layer, Option, PubSub, Semaphore, Stream, SubscriptionRef } from "effect"
import { clip } from "../../domain/LogText.ts"
import type { PbxConnection } from "../socket/PbxConnection.ts"
import { PbxConnections } from "../socket/PbxConnections.ts"
import { PbxSettings } from "../PbxSettings.ts"
import { type CallChange, connected, lost, onIndication, resend, setUsers, type WatchBook, type WatchStatus } from "./WatchBook.ts"
import { srcPrefix, type WatchedUser, type WatchProtocol } from "./WatchProtocol.ts"

export type { CallChange, WatchStatus }

/** One watched user as the status page shows it. */
export interface UserWatch {
  readonly user: WatchedUser
  /** The PBX the user is watched on. */
  readonly pbx: string
  readonly status: WatchStatus
  readonly inCall: boolean
  readonly reason?: string | undefined
}

export interface CallWatchOptions {
  readonly protocol: WatchProtocol
  /** An unanswered request is sent again after this long. */
  readonly answerTimeoutMillis: number
  /** A user the PBX refused is asked again after this long. */
  readonly refusedRetryMillis: number
}

export class CallWatch extends Context.Service<CallWatch, {
  /** The users to watch (the whole set; users left out stop being watched). */
  readonly setUsers: (users: ReadonlyArray<WatchedUser>) => Effect.Effect<void>
  readonly changes: Stream.Stream<CallChange>
  readonly current: Effect.Effect<ReadonlyArray<UserWatch>>
  /** PBXs whose App object lacks the API this way of watching needs. */
  readonly missingApi: SubscriptionRef.SubscriptionRef<ReadonlyArray<string>>
}>()("teams-presence-connector/pbx/calls/CallWatch") {
  static readonly layer = (options: CallWatchOptions) => Layer.effect(CallWatch, makeCallWatch(options))
}

/** A PBX logged in: once its PbxInfo says which APIs it enables, its users are watched and its indications read. */
const follow = Effect.fn("CallWatch.follow")(function*(book: WatchBook, connection: PbxConnection, requestTimeoutMs: number) {
  const { protocol } = book
  const info = yield* Deferred.await(connection.pbxInfo).pipe(Effect.timeoutOption(requestTimeoutMs))
  const apiOk = Option.isNone(info) || (info.value.apis ?? []).includes(protocol.api)
  if (!apiOk) {
    yield* Effect.logError(
      `PBX ${clip(connection.pbx, 64)}: cannot watch calls: set the checkmark ${protocol.api} on the App object (pbxToTeams.source ${protocol.source})`
    )
  }
  yield* SubscriptionRef.update(book.missingApi, (pbxs) => [...pbxs.filter((pbx) => pbx !== connection.pbx), ...(apiOk ? [] : [connection.pbx])])
  const indications = yield* PubSub.subscribe(connection.indications)
  yield* connected(book, connection, apiOk)
  while (true) {
    const { envelope, message } = yield* PubSub.take(indications)
    if (envelope.api !== protocol.api || envelope.src?.startsWith(srcPrefix) !== true) continue
    yield* onIndication(book, connection, envelope.mt, envelope.src, message)
  }
}, Effect.scoped)

const makeCallWatch = Effect.fnUntraced(function*(options: CallWatchOptions) {
  const connections = yield* PbxConnections
  const settings = yield* PbxSettings
  const book: WatchBook = {
    protocol: options.protocol,
    connections,
    masterPbx: settings.masterPbx,
    entries: new Map(),
    live: new Map(),
    lock: yield* Semaphore.make(1),
    changes: yield* PubSub.unbounded<CallChange>(),
    missingApi: yield* SubscriptionRef.make<ReadonlyArray<string>>([])
  }
  const watchConnection = (connection: PbxConnection) =>
    Effect.raceFirst(follow(book, connection, settings.requestTimeoutMs), Deferred.await(connection.closed)).pipe(
      Effect.ensuring(lost(book, connection)),
      Effect.forkScoped
    )

  const events = yield* connections.subscribe
  for (const pbx of (yield* SubscriptionRef.get(connections.states)).keys()) {
    const connection = yield* connections.get(pbx)
    if (Option.isSome(connection)) yield* watchConnection(connection.value)
  }
  yield* Effect.gen(function*() {
    while (true) {
      const event = yield* PubSub.take(events)
      if (event._tag === "Up") yield* watchConnection(event.connection)
    }
  }).pipe(Effect.forkScoped)
  yield* Effect.gen(function*() {
    while (true) {
      yield* Effect.sleep(Math.max(1000, Math.min(options.answerTimeoutMillis, 30_000)))
      yield* resend(book, options.answerTimeoutMillis, options.refusedRetryMillis)
    }
  }).pipe(Effect.forkScoped)

  return CallWatch.of({
    setUsers: (users) => setUsers(book, users),
    changes: Stream.fromPubSub(book.changes),
    current: Effect.sync(() =>
      [...book.entries.values()].map((entry): UserWatch => ({
        user: entry.user,
        pbx: entry.pbx,
        status: entry.status,
        inCall: entry.inCall,
        ...(entry.reason !== undefined ? { reason: entry.reason } : {})
      }))
    ),
    missingApi: book.missingApi
  })
})
