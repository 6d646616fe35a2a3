/**
 * Sets, refreshes and clears the connector's presence session for Teams users (Learn presence-setpresence.md,
 * presence-clearpresence.md): `setPresence {sessionId, availability, activity, expirationDuration}` while a user is in
 * a PBX call, again before the session expires, and `clearPresence {sessionId}` when the call ends. Latest wins per
 * user: a user changed while a request for it is in flight is sent once more afterwards, with the newest wish. Every
 * request takes a place in the application's presence budget (shared with the presence reads) and waits for one
 * rather than failing; a Retry-After pauses the whole budget; other failures are retried per user with backoff.
 */
import { Clock, Context, Effect, FiberMap, Layer, Metric, Queue, Stream, SubscriptionRef } from "effect"
import { clip } from "../../domain/LogText.ts"
import type { AuthError } from "../auth/AuthError.ts"
import { GraphClient } from "../client/GraphClient.ts"
import type { GraphError } from "../client/GraphError.ts"
import { type CredentialRef } from "../client/GraphSettings.ts"
import { PresenceBudget } from "./PresenceBudget.ts"
import { loadSessions, makeSessionStore } from "./SessionStore.ts"
import {
  type Action,
  actionOf,
  expirationDuration,
  failed,
  retryDelay,
  type SessionEntry,
  settled,
  succeeded,
  want
} from "./SessionTable.ts"

export interface PresenceSessionsOptions {
  /** The writing application's client id: Graph's docs ask for it as the session id. */
  readonly sessionId: string
  readonly credential: CredentialRef
  readonly availability: string
  readonly activity: string
  readonly expirationMinutes: number
  /** A session is set again this long after the last set (before it expires). */
  readonly refreshMillis: number
  /** Requests in flight at once. */
  readonly concurrency: number
  readonly dataDir: string
  /** Sessions stored by an earlier run are cleared after this long unless the user is in a call by then. */
  readonly startupHoldMillis: number
}

/** How the writes go, for the status page's light. */
export interface SessionsHealth {
  readonly waiting: number
  readonly retrying: number
  /** The latest failure, while a user is still failing. */
  readonly failing?: { readonly message: string; readonly status: number; readonly since: number } | undefined
}

/** `connector_teams_presence_writes_total{operation, result}` */
export const teamsPresenceWrites = Metric.counter("connector_teams_presence_writes_total", {
  description: "setPresence / clearPresence requests sent to Microsoft Graph for PBX calls",
  incremental: true
})

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
  readonly failing: SubscriptionRef.SubscriptionRef<SessionsHealth["failing"]>
}>()("teams-presence-connector/graph/sessions/PresenceSessions") {
  static readonly layer = (options: PresenceSessionsOptions) => Layer.effect(PresenceSessions, makeSessions(options))
}

const makeSessions = Effect.fnUntraced(function*(options: PresenceSessionsOptions) {
  const graph = yield* GraphClient
  const budget = yield* PresenceBudget
  const entries = new Map<string, SessionEntry>()
  const queue = yield* Queue.unbounded<string>()
  const queued = new Set<string>()
  const inFlight = new Set<string>()
  const again = new Set<string>()
  const retries = yield* FiberMap.make<string>()
  const activeUsers = yield* SubscriptionRef.make<ReadonlySet<string>>(new Set())
  const idle = yield* SubscriptionRef.make(true)
  const failing = yield* SubscriptionRef.make<SessionsHealth["failing"]>(undefined)
  const store = yield* makeSessionStore(options.dataDir, options.sessionId)

  const publishActive = Effect.gen(function*() {
    const active = new Set([...entries].filter(([, entry]) => entry.active).map(([id]) => id))
    const before = yield* SubscriptionRef.get(activeUsers)
    if (before.size === active.size && [...active].every((id) => before.has(id))) return
    yield* SubscriptionRef.set(activeUsers, active)
    yield* store.offer([...active])
  })

  const markDirty = (ids: Iterable<string>) =>
    Effect.gen(function*() {
      for (const id of ids) {
        if (inFlight.has(id)) again.add(id)
        else if (!queued.has(id)) {
          queued.add(id)
          yield* Queue.offer(queue, id)
        }
      }
      if (queued.size > 0) yield* SubscriptionRef.set(idle, false)
    })

  const request = (id: string, action: Exclude<Action, "none">): Effect.Effect<void, GraphError | AuthError> =>
    graph.executeEmpty({
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

  /** After a failure: Retry-After pauses the budget; the user is tried again after its backoff. */
  const onFailure = Effect.fnUntraced(function*(id: string, entry: SessionEntry, action: Action, error: GraphError | AuthError) {
    const status = error._tag === "GraphError" ? error.status : 0
    const retryAfter = error._tag === "GraphError" ? error.retryAfterMillis : undefined
    if (action === "clearPresence" && status === 404) {
      // Graph holds no session (it expired, or was never created): nothing left to clear.
      return entries.set(id, succeeded(entry, action, yield* Clock.currentTimeMillis))
    }
    if (retryAfter !== undefined) yield* budget.pauseFor(retryAfter)
    const next = failed(entry, error.message)
    entries.set(id, next)
    const since = (yield* SubscriptionRef.get(failing))?.since ?? (yield* Clock.currentTimeMillis)
    yield* SubscriptionRef.set(failing, { message: `${action} for ${id}: ${error.message}`, status, since })
    yield* Effect.logWarning(`Teams presence ${action} for user ${clip(id, 60)} failed (${status}): ${clip(error.message, 200)}`).pipe(
      Effect.annotateLogs({ logKey: `teams-presence-write:${status}` })
    )
    yield* FiberMap.run(retries, id, Effect.andThen(Effect.sleep(retryDelay(next.failures, retryAfter)), markDirty([id])))
  })

  /** Sends what one user needs now, if anything. */
  const process = Effect.fnUntraced(function*(id: string) {
    const action = actionOf(entries.get(id), yield* Clock.currentTimeMillis, options.refreshMillis)
    if (action === "none") return
    const result = yield* Effect.result(budget.run(request(id, action)))
    const entry = entries.get(id)!
    yield* Metric.update(Metric.withAttributes(teamsPresenceWrites, { operation: action, result: result._tag === "Success" ? "ok" : "error" }), 1)
    if (result._tag === "Failure") return yield* onFailure(id, entry, action, result.failure)
    yield* FiberMap.remove(retries, id)
    entries.set(id, succeeded(entry, action, yield* Clock.currentTimeMillis))
    if (![...entries.values()].some((e) => e.failures > 0) && (yield* SubscriptionRef.get(failing)) !== undefined) {
      yield* SubscriptionRef.set(failing, undefined)
    }
  })

  const worker = Effect.forever(Effect.gen(function*() {
    const id = yield* Queue.take(queue)
    queued.delete(id)
    inFlight.add(id)
    yield* process(id).pipe(Effect.catchCause((cause) => Effect.logError(`Teams presence write for ${clip(id, 60)} failed`, cause)))
    inFlight.delete(id)
    const entry = entries.get(id)
    if (entry !== undefined && settled(entry)) entries.delete(id)
    yield* publishActive
    if (again.delete(id)) yield* markDirty([id])
    if (queued.size === 0 && inFlight.size === 0) yield* SubscriptionRef.set(idle, true)
  }))
  for (let i = 0; i < options.concurrency; i++) yield* Effect.forkScoped(worker)

  // Refreshes: a session is set again `refreshMillis` after the last set, so it never reaches its expiry.
  const tick = Math.max(1000, Math.min(10_000, Math.floor(options.refreshMillis / 4)))
  yield* Effect.gen(function*() {
    while (true) {
      yield* Effect.sleep(tick)
      const now = yield* Clock.currentTimeMillis
      const due = [...entries].filter(([, entry]) => entry.failures === 0 && actionOf(entry, now, options.refreshMillis) !== "none")
      yield* markDirty(due.map(([id]) => id))
    }
  }).pipe(Effect.forkScoped)

  // Sessions an earlier run left behind: held until the PBX tells, then cleared unless the user is in a call.
  const stored = yield* loadSessions(options.dataDir, options.sessionId)
  for (const id of stored) entries.set(id, { desired: "held", active: true, failures: 0 })
  if (stored.length > 0) {
    yield* Effect.logInfo(`${stored.length} Teams presence sessions from the last run are cleared unless the user is still in a call`)
    yield* Effect.gen(function*() {
      yield* Effect.sleep(options.startupHoldMillis)
      const held = [...entries].filter(([, entry]) => entry.desired === "held").map(([id]) => id)
      for (const id of held) entries.set(id, want(entries.get(id), false))
      yield* markDirty(held)
    }).pipe(Effect.forkScoped)
  }
  yield* publishActive
  yield* Effect.addFinalizer(() => store.flush)

  const setInCall = (teamsId: string, inCall: boolean) =>
    Effect.suspend(() => {
      const before = entries.get(teamsId)
      const next = want(before, inCall)
      if (next === before) return Effect.void
      entries.set(teamsId, next)
      return Effect.andThen(FiberMap.remove(retries, teamsId), markDirty([teamsId]))
    })

  const clearAll = Effect.gen(function*() {
    const held = [...entries].filter(([, entry]) => entry.active).map(([id]) => id)
    for (const id of held) entries.set(id, { ...want(entries.get(id), false), failures: 0 })
    yield* markDirty(held)
    yield* Stream.runHead(Stream.filter(SubscriptionRef.changes(idle), (isIdle) => isIdle && queued.size === 0 && inFlight.size === 0))
  })

  return PresenceSessions.of({
    setInCall,
    entries: Effect.sync(() => new Map(entries)),
    health: Effect.map(SubscriptionRef.get(failing), (current) => ({
      waiting: queued.size + inFlight.size,
      retrying: [...entries.values()].filter((entry) => entry.failures > 0).length,
      ...(current !== undefined ? { failing: current } : {})
    })),
    clearAll,
    activeUsers,
    failing
  })
})
