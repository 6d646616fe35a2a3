/**
 * Watches the calls of a set of PBX users and tells who is on the phone. Each user is watched on the connection of
 * the PBX the user is registered at (`loc`), else the master's — the PBX that knows the user's calls (protocols.md
 * §2.6). Watching starts again whenever a PBX logs in, when a user moves to another PBX or is renamed, and for a
 * request the PBX did not answer; a user the PBX refused is asked again after a while. While a user's PBX is not
 * connected the user counts as not on the phone. The output is a stream of changes, "user U is / is not in a call".
 */
import { Clock, Context, Deferred, Effect, Layer, Option, PubSub, Semaphore, Stream, SubscriptionRef } from "effect"
import { clip } from "../../domain/LogText.ts"
import type { PbxConnection } from "../socket/PbxConnection.ts"
import { PbxConnections } from "../socket/PbxConnections.ts"
import { PbxSettings } from "../PbxSettings.ts"
import { srcOf, srcPrefix, type WatchedUser, type WatchMemory, type WatchProtocol } from "./WatchProtocol.ts"

export interface CallChange {
  readonly guid: string
  readonly inCall: boolean
  /** Clock milliseconds when the connector learnt it. */
  readonly at: number
}

export type WatchStatus = "waiting" | "watching" | "live" | "refused"

/** One watched user as the status page shows it. */
export interface UserWatch {
  readonly user: WatchedUser
  /** The PBX the user is watched on. */
  readonly pbx: string
  readonly status: WatchStatus
  readonly inCall: boolean
  readonly reason?: string | undefined
}

interface Entry {
  user: WatchedUser
  pbx: string
  connectionId: number | undefined
  status: WatchStatus
  sentAt: number
  reason: string | undefined
  inCall: boolean
  /** The PBX has told the user's call state at least once. */
  known: boolean
  memory: WatchMemory
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

const makeCallWatch = Effect.fnUntraced(function*(options: CallWatchOptions) {
  const connections = yield* PbxConnections
  const settings = yield* PbxSettings
  const protocol = options.protocol
  const entries = new Map<string, Entry>()
  const live = new Map<string, { readonly connection: PbxConnection; apiOk: boolean }>()
  const lock = yield* Semaphore.make(1)
  const serial = lock.withPermits(1)
  const changes = yield* PubSub.unbounded<CallChange>()
  const missingApi = yield* SubscriptionRef.make<ReadonlyArray<string>>([])

  /** A change is published; so is the first reading of a user (a session an earlier run left can then be cleared). */
  const setInCall = Effect.fnUntraced(function*(entry: Entry, inCall: boolean, reading = false) {
    const first = reading && !entry.known
    if (reading) entry.known = true
    if (entry.inCall === inCall && !first) return
    entry.inCall = inCall
    yield* PubSub.publish(changes, { guid: entry.user.guid, inCall, at: yield* Clock.currentTimeMillis })
  })

  /** The PBX a user is watched on: its `loc` when that PBX has an App connection (now or before), else the master. */
  const routeOf = Effect.fnUntraced(function*(user: WatchedUser) {
    const states = yield* SubscriptionRef.get(connections.states)
    return user.loc !== "" && states.has(user.loc) ? user.loc : settings.masterPbx
  })

  /** Starts watching `entry` on its PBX's connection, or leaves it waiting for that PBX. */
  const start = Effect.fnUntraced(function*(entry: Entry) {
    const now = yield* Clock.currentTimeMillis
    entry.sentAt = now
    const target = live.get(entry.pbx)
    if (target === undefined) {
      entry.status = "waiting"
      entry.connectionId = undefined
      return yield* setInCall(entry, false)
    }
    entry.connectionId = target.connection.id
    entry.memory = {}
    if (!target.apiOk) {
      entry.status = "refused"
      entry.reason = `the App object on ${entry.pbx} does not enable ${protocol.api}`
      return yield* setInCall(entry, false, true)
    }
    entry.status = "watching"
    entry.reason = undefined
    yield* target.connection.send(protocol.watch(entry.user))
  })

  /** Stops watching `entry` on the connection it was started on (nothing to do while that PBX is away). */
  const stop = Effect.fnUntraced(function*(entry: Entry) {
    const target = live.get(entry.pbx)
    if (target === undefined || target.connection.id !== entry.connectionId || entry.status === "refused") return
    const message = protocol.unwatch(entry.user, entry.memory)
    if (message !== undefined) yield* target.connection.send(message)
  })

  const setUsers = (users: ReadonlyArray<WatchedUser>) =>
    serial(Effect.gen(function*() {
      const wanted = new Map(users.map((user) => [user.guid, user]))
      for (const [guid, entry] of entries) {
        if (wanted.has(guid)) continue
        yield* stop(entry)
        yield* setInCall(entry, false)
        entries.delete(guid)
      }
      for (const user of wanted.values()) {
        const entry = entries.get(user.guid)
        const pbx = yield* routeOf(user)
        if (entry !== undefined && sameUser(entry.user, user) && entry.pbx === pbx) continue
        if (entry !== undefined) yield* stop(entry)
        const next: Entry = entry ?? {
          user,
          pbx,
          connectionId: undefined,
          status: "waiting",
          sentAt: 0,
          reason: undefined,
          inCall: false,
          known: false,
          memory: {}
        }
        next.user = user
        next.pbx = pbx
        entries.set(user.guid, next)
        yield* start(next)
      }
    }))

  /** One indication on `connection`: the user it names (by src) learns what it means. */
  const onIndication = (connection: PbxConnection, mt: string, src: string, message: unknown) =>
    serial(Effect.gen(function*() {
      const entry = entries.get(src.slice(srcPrefix.length))
      if (entry === undefined || entry.connectionId !== connection.id) return
      const reading = protocol.read(mt, message, entry.memory)
      switch (reading._tag) {
        case "Ignored":
          return
        case "Malformed":
          return yield* Effect.logWarning(`PBX ${clip(connection.pbx, 64)}: ignored a malformed ${clip(mt, 40)}: ${clip(reading.reason, 200)}`)
            .pipe(Effect.annotateLogs({ logKey: `calls-malformed:${connection.pbx}` }))
        case "Refused":
          entry.status = "refused"
          entry.reason = reading.reason
          yield* Effect.logWarning(`PBX ${clip(connection.pbx, 64)} refused to watch the calls of ${clip(entry.user.h323, 64)}: ${clip(reading.reason, 200)}`)
            .pipe(Effect.annotateLogs({ logKey: `calls-refused:${connection.pbx}` }))
          // A refusal is an answer too: as far as the connector can know, the user is not in a call.
          return yield* setInCall(entry, false, true)
        case "Accepted":
          entry.memory = reading.memory
          entry.status = "live"
          return reading.inCall === undefined ? undefined : yield* setInCall(entry, reading.inCall, true)
        case "InCall":
          entry.memory = reading.memory
          entry.status = "live"
          return yield* setInCall(entry, reading.inCall, true)
      }
    }))

  /** A PBX logged in: its users are watched on the new connection, and users of PBXs not seen before move to theirs. */
  const follow = Effect.fn("CallWatch.follow")(function*(connection: PbxConnection) {
    const info = yield* Deferred.await(connection.pbxInfo).pipe(Effect.timeoutOption(settings.requestTimeoutMs))
    const apiOk = Option.isNone(info) || (info.value.apis ?? []).includes(protocol.api)
    if (!apiOk) {
      yield* Effect.logError(
        `PBX ${clip(connection.pbx, 64)}: cannot watch calls: set the checkmark ${protocol.api} on the App object (pbxToTeams.source ${protocol.source})`
      )
    }
    yield* SubscriptionRef.update(missingApi, (pbxs) => [...pbxs.filter((pbx) => pbx !== connection.pbx), ...(apiOk ? [] : [connection.pbx])])
    const indications = yield* PubSub.subscribe(connection.indications)
    yield* serial(Effect.gen(function*() {
      live.set(connection.pbx, { connection, apiOk })
      if (apiOk) for (const message of protocol.open) yield* connection.send(message)
      for (const entry of entries.values()) {
        const pbx = yield* routeOf(entry.user)
        if (pbx !== connection.pbx && entry.pbx === pbx) continue
        // Already started on this connection (setUsers ran between the login and this).
        if (entry.pbx === pbx && entry.connectionId === connection.id) continue
        if (entry.pbx !== pbx) yield* stop(entry)
        entry.pbx = pbx
        yield* start(entry)
      }
    }))
    while (true) {
      const { envelope, message } = yield* PubSub.take(indications)
      if (envelope.api !== protocol.api || envelope.src?.startsWith(srcPrefix) !== true) continue
      yield* onIndication(connection, envelope.mt, envelope.src, message)
    }
  }, Effect.scoped)

  /** A PBX's connection ended: its users wait for it, and count as not on the phone meanwhile. */
  const lost = (connection: PbxConnection) =>
    serial(Effect.gen(function*() {
      if (live.get(connection.pbx)?.connection !== connection) return
      live.delete(connection.pbx)
      for (const entry of entries.values()) {
        if (entry.connectionId !== connection.id) continue
        entry.status = "waiting"
        entry.connectionId = undefined
        yield* setInCall(entry, false)
      }
    }))

  const watchConnection = (connection: PbxConnection) =>
    Effect.raceFirst(follow(connection), Deferred.await(connection.closed)).pipe(Effect.ensuring(lost(connection)), Effect.forkScoped)

  // Requests the PBX did not answer are sent again; refused users are asked again after a while.
  const resend = serial(Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    for (const entry of entries.values()) {
      const stale = entry.status === "watching" && now - entry.sentAt >= options.answerTimeoutMillis
      const retry = entry.status === "refused" && live.get(entry.pbx)?.apiOk === true && now - entry.sentAt >= options.refusedRetryMillis
      if (stale || retry) yield* start(entry)
    }
  }))

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
      yield* resend
    }
  }).pipe(Effect.forkScoped)

  return CallWatch.of({
    setUsers,
    changes: Stream.fromPubSub(changes),
    current: Effect.sync(() =>
      [...entries.values()].map((entry): UserWatch => ({
        user: entry.user,
        pbx: entry.pbx,
        status: entry.status,
        inCall: entry.inCall,
        ...(entry.reason !== undefined ? { reason: entry.reason } : {})
      }))
    ),
    missingApi
  })
})

const sameUser = (a: WatchedUser, b: WatchedUser): boolean => a.h323 === b.h323 && a.cn === b.cn && a.loc === b.loc

/** The src of a user's watch, for tests that speak for the PBX. */
export { srcOf }
