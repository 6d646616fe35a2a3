/**
 * Sets, refreshes and clears the connector's presence session for Teams users (Learn presence-setpresence.md,
 * presence-clearpresence.md): `setPresence {sessionId, availability, activity, expirationDuration}` while a user is in
 * a PBX call, again before the session expires, and `clearPresence {sessionId}` when the call ends. Latest wins per
 * user: a user changed while a request for it is in flight is sent once more afterwards, with the newest wish. Every
 * request takes a place in the application's presence budget (shared with the presence reads) and waits for one
 * rather than failing; a Retry-After pauses the whole budget; other failures are retried per user with backoff.
 * The steps are in SessionWriter.ts; this wires them into workers and timers.
 */
import { Context, Effect, FiberMap, Layer, Queue, Stream, SubscriptionRef } from "effect"
import { GraphClient } from "../client/GraphClient.ts"
import { PresenceBudget } from "./PresenceBudget.ts"
import { loadSessions, makeSessionStore } from "./SessionStore.ts"
import type { SessionEntry } from "./SessionTable.ts"
import {
  clearEvery,
  type Failing,
  publishActive,
  queueRefreshes,
  releaseHeld,
  type SessionBook,
  type SessionWriteOptions,
  setInCall,
  worker
} from "./SessionWriter.ts"

export { teamsPresenceWrites } from "./SessionWriter.ts"

export interface PresenceSessionsOptions extends SessionWriteOptions {
  /** Requests in flight at once. */
  readonly concurrency: number
  /** Sessions stored by an earlier run are cleared after this long unless the user is in a call by then. */
  readonly startupHoldMillis: number
}

/** How the writes go, for the status page's light. */
export interface SessionsHealth {
  readonly waiting: number
  readonly retrying: number
  /** The latest failure, while a user is still failing. */
  readonly failing?: Failing
}

export class PresenceSessions extends Context.Service<PresenceSessions, {
  /** The user's call state: set (and keep) the session while in a call, clear it afterwards. */
  readonly setInCall: (teamsId: string, inCall: boolean) => Effect.Effect<void>
  readonly entries: Effect.Effect<ReadonlyMap<string, SessionEntry>>
  readonly health: Effect.Effect<SessionsHealth>
  /** Shutdown: every session the connector holds is cleared (waits for the requests; bound it with a timeout). */
  readonly clearAll: Effect.Effect<void>
  /** Changes of the set of users whose session Graph holds, for tests and the status page. */
  readonly activeUsers: SubscriptionRef.SubscriptionRef<ReadonlySet<string>>
  /** The latest failure while writes fail (Retry-After already applied to the budget), undefined once they succeed. */
  readonly failing: SubscriptionRef.SubscriptionRef<Failing>
}>()("teams-presence-connector/graph/sessions/PresenceSessions") {
  static readonly layer = (options: PresenceSessionsOptions) => Layer.effect(PresenceSessions, makeSessions(options))
}

const makeSessions = Effect.fnUntraced(function*(options: PresenceSessionsOptions) {
  const store = yield* makeSessionStore(options.sessionId)
  const book: SessionBook = {
    options,
    graph: yield* GraphClient,
    budget: yield* PresenceBudget,
    entries: new Map(),
    queue: yield* Queue.unbounded<string>(),
    queued: new Set(),
    inFlight: new Set(),
    again: new Set(),
    retries: yield* FiberMap.make<string>(),
    activeUsers: yield* SubscriptionRef.make<ReadonlySet<string>>(new Set()),
    idle: yield* SubscriptionRef.make(true),
    failing: yield* SubscriptionRef.make<Failing>(undefined),
    store: store.offer
  }
  for (let i = 0; i < options.concurrency; i++) yield* Effect.forkScoped(worker(book))

  // Refreshes: a session is set again `refreshMillis` after the last set, so it never reaches its expiry.
  const tick = Math.max(1000, Math.min(10_000, Math.floor(options.refreshMillis / 4)))
  yield* Effect.forever(Effect.andThen(Effect.sleep(tick), queueRefreshes(book))).pipe(Effect.forkScoped)

  // Sessions an earlier run left behind: held until the PBX tells, then cleared unless the user is in a call.
  const stored = yield* loadSessions(options.sessionId)
  for (const id of stored) book.entries.set(id, { desired: "held", active: true, failures: 0 })
  if (stored.length > 0) {
    yield* Effect.logInfo(`${stored.length} Teams presence sessions from the last run are cleared unless the user is still in a call`)
    yield* Effect.andThen(Effect.sleep(options.startupHoldMillis), releaseHeld(book)).pipe(Effect.forkScoped)
  }
  yield* publishActive(book)
  yield* Effect.addFinalizer(() => store.flush)

  return PresenceSessions.of({
    setInCall: (teamsId, inCall) => setInCall(book, teamsId, inCall),
    entries: Effect.sync(() => new Map(book.entries)),
    health: Effect.map(SubscriptionRef.get(book.failing), (current) => ({
      waiting: book.queued.size + book.inFlight.size,
      retrying: [...book.entries.values()].filter((entry) => entry.failures > 0).length,
      ...(current !== undefined ? { failing: current } : {})
    })),
    clearAll: Effect.andThen(
      clearEvery(book),
      Stream.runHead(Stream.filter(SubscriptionRef.changes(book.idle), (idle) => idle && book.queued.size === 0 && book.inFlight.size === 0))
    ),
    activeUsers: book.activeUsers,
    failing: book.failing
  })
})
