/**
 * The presence sessions' book and its steps: the wish and state per Teams user (SessionTable.ts), the queue of users
 * to send, what is in flight, the retries, and what Graph holds; each step takes the book. PresenceSessions wires
 * them into workers and timers. A user is in flight at most once: changed meanwhile, it is queued again afterwards.
 */
import { Clock, Effect, FiberMap, Metric, Queue, SubscriptionRef } from "effect"
import { clip } from "../../domain/LogText.ts"
import type { AuthError } from "../auth/AuthError.ts"
import type { GraphClient } from "../client/GraphClient.ts"
import type { GraphError } from "../client/GraphError.ts"
import type { CredentialRef } from "../client/GraphSettings.ts"
import type { PresenceBudget } from "./PresenceBudget.ts"
import { type Action, actionOf, expirationDuration, failed, retryDelay, type SessionEntry, settled, succeeded, want } from "./SessionTable.ts"

export interface SessionWriteOptions {
  /** The writing application's client id: Graph's docs ask for it as the session id. */
  readonly sessionId: string
  readonly credential: CredentialRef
  readonly availability: string
  readonly activity: string
  readonly expirationMinutes: number
  /** A session is set again this long after the last set (before it expires). */
  readonly refreshMillis: number
}

/** The latest failure while writes fail. */
export type Failing = { readonly message: string; readonly status: number; readonly since: number } | undefined

export interface SessionBook {
  readonly options: SessionWriteOptions
  readonly graph: GraphClient["Service"]
  readonly budget: PresenceBudget["Service"]
  readonly entries: Map<string, SessionEntry>
  readonly queue: Queue.Queue<string>
  readonly queued: Set<string>
  readonly inFlight: Set<string>
  readonly again: Set<string>
  readonly retries: FiberMap.FiberMap<string>
  readonly activeUsers: SubscriptionRef.SubscriptionRef<ReadonlySet<string>>
  readonly idle: SubscriptionRef.SubscriptionRef<boolean>
  readonly failing: SubscriptionRef.SubscriptionRef<Failing>
  /** Stores the users whose session Graph holds (written behind). */
  readonly store: (userIds: ReadonlyArray<string>) => Effect.Effect<unknown>
}

/** `connector_teams_presence_writes_total{operation, result}` */
export const teamsPresenceWrites = Metric.counter("connector_teams_presence_writes_total", {
  description: "setPresence / clearPresence requests sent to Microsoft Graph for PBX calls",
  incremental: true
})

/** Publishes (and stores) the users whose session Graph holds, when that set changed. */
export const publishActive = Effect.fnUntraced(function*(book: SessionBook) {
  const active = new Set([...book.entries].filter(([, entry]) => entry.active).map(([id]) => id))
  const before = yield* SubscriptionRef.get(book.activeUsers)
  if (before.size === active.size && [...active].every((id) => before.has(id))) return
  yield* SubscriptionRef.set(book.activeUsers, active)
  yield* book.store([...active])
})

/** Queues users to be sent (one in flight waits in `again`). */
export const markDirty = Effect.fnUntraced(function*(book: SessionBook, ids: Iterable<string>) {
  for (const id of ids) {
    if (book.inFlight.has(id)) book.again.add(id)
    else if (!book.queued.has(id)) {
      book.queued.add(id)
      yield* Queue.offer(book.queue, id)
    }
  }
  if (book.queued.size > 0) yield* SubscriptionRef.set(book.idle, false)
})

const request = (book: SessionBook, id: string, action: Exclude<Action, "none">): Effect.Effect<void, GraphError | AuthError> => {
  const { options } = book
  return book.graph.executeEmpty({
    method: "POST",
    url: `/v1.0/users/${encodeURIComponent(id)}/presence/${action}`,
    credential: options.credential,
    body: action === "setPresence"
      ? {
        sessionId: options.sessionId,
        availability: options.availability,
        activity: options.activity,
        expirationDuration: expirationDuration(options.expirationMinutes)
      }
      : { sessionId: options.sessionId }
  })
}

/** After a failure: Retry-After pauses the budget; the user is tried again after its backoff. */
const onFailure = Effect.fnUntraced(function*(book: SessionBook, id: string, entry: SessionEntry, action: Action, error: GraphError | AuthError) {
  const status = error._tag === "GraphError" ? error.status : 0
  const retryAfter = error._tag === "GraphError" ? error.retryAfterMillis : undefined
  if (action === "clearPresence" && status === 404) {
    // Graph holds no session (it expired, or was never created): nothing left to clear.
    return book.entries.set(id, succeeded(entry, action, yield* Clock.currentTimeMillis))
  }
  if (retryAfter !== undefined) yield* book.budget.pauseFor(retryAfter)
  const next = failed(entry, error.message)
  book.entries.set(id, next)
  const since = (yield* SubscriptionRef.get(book.failing))?.since ?? (yield* Clock.currentTimeMillis)
  yield* SubscriptionRef.set(book.failing, { message: `${action} for ${id}: ${error.message}`, status, since })
  yield* Effect.logWarning(`Teams presence ${action} for user ${clip(id, 60)} failed (${status}): ${clip(error.message, 200)}`).pipe(
    Effect.annotateLogs({ logKey: `teams-presence-write:${status}` })
  )
  yield* FiberMap.run(book.retries, id, Effect.andThen(Effect.sleep(retryDelay(next.failures, retryAfter)), markDirty(book, [id])))
})

/** Sends what one user needs now, if anything, inside the presence budget. */
const send = Effect.fnUntraced(function*(book: SessionBook, id: string) {
  const action = actionOf(book.entries.get(id), yield* Clock.currentTimeMillis, book.options.refreshMillis)
  if (action === "none") return
  const result = yield* Effect.result(book.budget.run(request(book, id, action)))
  const entry = book.entries.get(id)!
  yield* Metric.update(Metric.withAttributes(teamsPresenceWrites, { operation: action, result: result._tag === "Success" ? "ok" : "error" }), 1)
  if (result._tag === "Failure") return yield* onFailure(book, id, entry, action, result.failure)
  yield* FiberMap.remove(book.retries, id)
  book.entries.set(id, succeeded(entry, action, yield* Clock.currentTimeMillis))
  if (![...book.entries.values()].some((e) => e.failures > 0) && (yield* SubscriptionRef.get(book.failing)) !== undefined) {
    yield* SubscriptionRef.set(book.failing, undefined)
  }
})

/** One worker: takes the next user, sends what it needs, then queues it again if it changed meanwhile. */
export const worker = (book: SessionBook) =>
  Effect.forever(Effect.gen(function*() {
    const id = yield* Queue.take(book.queue)
    book.queued.delete(id)
    book.inFlight.add(id)
    yield* send(book, id).pipe(Effect.catchCause((cause) => Effect.logError(`Teams presence write for ${clip(id, 60)} failed`, cause)))
    book.inFlight.delete(id)
    const entry = book.entries.get(id)
    if (entry !== undefined && settled(entry)) book.entries.delete(id)
    yield* publishActive(book)
    if (book.again.delete(id)) yield* markDirty(book, [id])
    if (book.queued.size === 0 && book.inFlight.size === 0) yield* SubscriptionRef.set(book.idle, true)
  }))

/** Queues every session whose refresh is due (users retrying wait for their backoff). */
export const queueRefreshes = Effect.fnUntraced(function*(book: SessionBook) {
  const now = yield* Clock.currentTimeMillis
  const due = [...book.entries].filter(([, entry]) => entry.failures === 0 && actionOf(entry, now, book.options.refreshMillis) !== "none")
  yield* markDirty(book, due.map(([id]) => id))
})

/** The user's call state: the session is wanted (kept) or not; a new wish replaces a retry of the old one. */
export const setInCall = (book: SessionBook, teamsId: string, inCall: boolean) =>
  Effect.suspend(() => {
    const before = book.entries.get(teamsId)
    const next = want(before, inCall)
    if (next === before) return Effect.void
    book.entries.set(teamsId, next)
    return Effect.andThen(FiberMap.remove(book.retries, teamsId), markDirty(book, [teamsId]))
  })

/** Sessions an earlier run left: every one still held (no call reported for its user) is cleared now. */
export const releaseHeld = Effect.fnUntraced(function*(book: SessionBook) {
  const held = [...book.entries].filter(([, entry]) => entry.desired === "held").map(([id]) => id)
  for (const id of held) book.entries.set(id, want(book.entries.get(id), false))
  yield* markDirty(book, held)
})

/** Every session Graph holds for the connector is to be cleared (shutdown). */
export const clearEvery = Effect.fnUntraced(function*(book: SessionBook) {
  const held = [...book.entries].filter(([, entry]) => entry.active).map(([id]) => id)
  for (const id of held) book.entries.set(id, { ...want(book.entries.get(id), false), failures: 0 })
  yield* markDirty(book, held)
})
