/**
 * The call watch's book: every watched user with the PBX and connection it is watched on, what the PBX last said,
 * and the PBX connections in use — with the steps that change it, each taking the book. One lock keeps the steps
 * apart (CallWatch runs them from the plan, the connections and the PBX's indications).
 */
import { Clock, Effect, PubSub, type Semaphore, SubscriptionRef } from "effect"
import { clip } from "../../domain/LogText.ts"
import type { PbxConnection } from "../socket/PbxConnection.ts"
import type { PbxConnections } from "../socket/PbxConnections.ts"
import { srcPrefix, type WatchedUser, type WatchMemory, type WatchProtocol } from "./WatchProtocol.ts"

export interface CallChange {
  readonly guid: string
  readonly inCall: boolean
  /** Clock milliseconds when the connector learnt it. */
  readonly at: number
}

export type WatchStatus = "waiting" | "watching" | "live" | "refused"

export interface Entry {
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

export interface WatchBook {
  readonly protocol: WatchProtocol
  readonly connections: PbxConnections["Service"]
  readonly masterPbx: string
  readonly entries: Map<string, Entry>
  /** The connection in use per PBX, and whether its App object enables the protocol's API. */
  readonly live: Map<string, { readonly connection: PbxConnection; readonly apiOk: boolean }>
  readonly lock: Semaphore.Semaphore
  readonly changes: PubSub.PubSub<CallChange>
  readonly missingApi: SubscriptionRef.SubscriptionRef<ReadonlyArray<string>>
}

/** Runs a step under the book's lock. */
export const locked = <A, E, R>(book: WatchBook, step: Effect.Effect<A, E, R>) => book.lock.withPermits(1)(step)

/** A change is published; so is the first reading of a user (a session an earlier run left can then be cleared). */
export const setInCall = Effect.fnUntraced(function*(book: WatchBook, entry: Entry, inCall: boolean, reading = false) {
  const first = reading && !entry.known
  if (reading) entry.known = true
  if (entry.inCall === inCall && !first) return
  entry.inCall = inCall
  yield* PubSub.publish(book.changes, { guid: entry.user.guid, inCall, at: yield* Clock.currentTimeMillis })
})

/** The PBX a user is watched on: its `loc` when that PBX has an App connection (now or before), else the master. */
export const routeOf = Effect.fnUntraced(function*(book: WatchBook, user: WatchedUser) {
  const states = yield* SubscriptionRef.get(book.connections.states)
  return user.loc !== "" && states.has(user.loc) ? user.loc : book.masterPbx
})

/** Starts watching `entry` on its PBX's connection, or leaves it waiting for that PBX. */
export const start = Effect.fnUntraced(function*(book: WatchBook, entry: Entry) {
  entry.sentAt = yield* Clock.currentTimeMillis
  const target = book.live.get(entry.pbx)
  if (target === undefined) {
    entry.status = "waiting"
    entry.connectionId = undefined
    return yield* setInCall(book, entry, false)
  }
  entry.connectionId = target.connection.id
  entry.memory = {}
  if (!target.apiOk) {
    entry.status = "refused"
    entry.reason = `the App object on ${entry.pbx} does not enable ${book.protocol.api}`
    return yield* setInCall(book, entry, false, true)
  }
  entry.status = "watching"
  entry.reason = undefined
  yield* target.connection.send(book.protocol.watch(entry.user))
})

/** Stops watching `entry` on the connection it was started on (nothing to do while that PBX is away). */
export const stop = Effect.fnUntraced(function*(book: WatchBook, entry: Entry) {
  const target = book.live.get(entry.pbx)
  if (target === undefined || target.connection.id !== entry.connectionId || entry.status === "refused") return
  const message = book.protocol.unwatch(entry.user, entry.memory)
  if (message !== undefined) yield* target.connection.send(message)
})

const sameUser = (a: WatchedUser, b: WatchedUser): boolean => a.h323 === b.h323 && a.cn === b.cn && a.loc === b.loc

const newEntry = (user: WatchedUser, pbx: string): Entry => ({
  user,
  pbx,
  connectionId: undefined,
  status: "waiting",
  sentAt: 0,
  reason: undefined,
  inCall: false,
  known: false,
  memory: {}
})

/** The users to watch: those left out stop, new ones start, moved or renamed ones start again. */
export const setUsers = (book: WatchBook, users: ReadonlyArray<WatchedUser>) =>
  locked(book, Effect.gen(function*() {
    const wanted = new Map(users.map((user) => [user.guid, user]))
    for (const [guid, entry] of book.entries) {
      if (wanted.has(guid)) continue
      yield* stop(book, entry)
      yield* setInCall(book, entry, false)
      book.entries.delete(guid)
    }
    for (const user of wanted.values()) {
      const entry = book.entries.get(user.guid)
      const pbx = yield* routeOf(book, user)
      if (entry !== undefined && sameUser(entry.user, user) && entry.pbx === pbx) continue
      if (entry !== undefined) yield* stop(book, entry)
      const next = entry ?? newEntry(user, pbx)
      next.user = user
      next.pbx = pbx
      book.entries.set(user.guid, next)
      yield* start(book, next)
    }
  }))

/** One indication on `connection`: the user it names (by src) learns what it means. */
export const onIndication = (book: WatchBook, connection: PbxConnection, mt: string, src: string, message: unknown) =>
  locked(book, Effect.gen(function*() {
    const entry = book.entries.get(src.slice(srcPrefix.length))
    if (entry === undefined || entry.connectionId !== connection.id) return
    const reading = book.protocol.read(mt, message, entry.memory)
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
        return yield* setInCall(book, entry, false, true)
      case "Accepted":
        entry.memory = reading.memory
        entry.status = "live"
        return reading.inCall === undefined ? undefined : yield* setInCall(book, entry, reading.inCall, true)
      case "InCall":
        entry.memory = reading.memory
        entry.status = "live"
        return yield* setInCall(book, entry, reading.inCall, true)
    }
  }))

/** A PBX logged in: its users are watched on the new connection, and users of a PBX not seen before move to theirs. */
export const connected = (book: WatchBook, connection: PbxConnection, apiOk: boolean) =>
  locked(book, Effect.gen(function*() {
    book.live.set(connection.pbx, { connection, apiOk })
    if (apiOk) for (const message of book.protocol.open) yield* connection.send(message)
    for (const entry of book.entries.values()) {
      const pbx = yield* routeOf(book, entry.user)
      if (pbx !== connection.pbx && entry.pbx === pbx) continue
      // Already started on this connection (setUsers ran between the login and this).
      if (entry.pbx === pbx && entry.connectionId === connection.id) continue
      if (entry.pbx !== pbx) yield* stop(book, entry)
      entry.pbx = pbx
      yield* start(book, entry)
    }
  }))

/** A PBX's connection ended: its users wait for it, and count as not on the phone meanwhile. */
export const lost = (book: WatchBook, connection: PbxConnection) =>
  locked(book, Effect.gen(function*() {
    if (book.live.get(connection.pbx)?.connection !== connection) return
    book.live.delete(connection.pbx)
    for (const entry of book.entries.values()) {
      if (entry.connectionId !== connection.id) continue
      entry.status = "waiting"
      entry.connectionId = undefined
      yield* setInCall(book, entry, false)
    }
  }))

/** Requests the PBX did not answer are sent again; refused users are asked again after a while. */
export const resend = (book: WatchBook, answerTimeoutMillis: number, refusedRetryMillis: number) =>
  locked(book, Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    for (const entry of book.entries.values()) {
      const stale = entry.status === "watching" && now - entry.sentAt >= answerTimeoutMillis
      const retry = entry.status === "refused" && book.live.get(entry.pbx)?.apiOk === true && now - entry.sentAt >= refusedRetryMillis
      if (stale || retry) yield* start(book, entry)
    }
  }))
