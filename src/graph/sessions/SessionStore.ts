/**
 * The Teams users for whom the connector holds a presence session, kept in the state store (for tenant `default` in
 * files: `pbx-to-teams-sessions.json` in the data directory, as before), written behind, so that a restart after a
 * crash clears the sessions of users who are no longer in a call instead of leaving them "In a call" until the
 * session expires.
 */
import { Effect, Option, Queue, Semaphore } from "effect"
import { TenantState } from "../../state/TenantState.ts"

/** The stored users of `sessionId`; none stored is none, an unreadable record or another application's is logged. */
export const loadSessions = Effect.fn("SessionStore.load")(function*(sessionId: string) {
  const state = yield* TenantState
  const stored = yield* state.presenceSessions.load.pipe(
    Effect.catch((error) =>
      Effect.logWarning(`the stored presence sessions are unreadable (${error.message}); none are cleared`).pipe(Effect.as(Option.none()))
    )
  )
  if (Option.isNone(stored)) return [] as ReadonlyArray<string>
  if (stored.value.sessionId.toLowerCase() !== sessionId.toLowerCase()) {
    yield* Effect.logWarning(
      `the stored presence sessions are another application's (${stored.value.sessionId}); they end by themselves when they expire`
    )
    return []
  }
  return stored.value.userIds
})

/** Writes behind from one fiber (latest wins); `flush` writes what is still pending, on shutdown. */
export const makeSessionStore = Effect.fnUntraced(function*(sessionId: string) {
  const state = yield* TenantState
  const save = (userIds: ReadonlyArray<string>) =>
    state.presenceSessions.save({ version: 1, sessionId, userIds }).pipe(
      Effect.catch((error) => Effect.logError(`could not store the presence sessions: ${error.message}`))
    )
  const queue = yield* Queue.sliding<ReadonlyArray<string>>(1)
  // One save at a time; a save that began always ends (a stop waits for it), so `flush` never races a write in flight
  // and a set taken from the queue is never dropped by the stop.
  const lock = yield* Semaphore.make(1)
  yield* Effect.uninterruptibleMask((restore) =>
    restore(Queue.take(queue)).pipe(Effect.flatMap((userIds) => lock.withPermits(1)(save(userIds))))
  ).pipe(Effect.forever, Effect.forkScoped)
  const flush = lock.withPermits(1)(Effect.gen(function*() {
    const latest = Option.getOrUndefined(yield* Queue.poll(queue))
    if (latest !== undefined) yield* save(latest)
  }))
  return { offer: (userIds: ReadonlyArray<string>) => Queue.offer(queue, userIds), flush }
})
