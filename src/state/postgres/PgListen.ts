/**
 * LISTEN for the life of a scope, listening again after a lost connection. Notifications are only wake-ups:
 * `onListening` runs after every (re)LISTEN so the caller re-reads what it may have missed.
 * Whatever has arrived is handled in one go (`onNotify` for each, in order), without yielding between them.
 *
 * Every LISTEN of one client shares one session (docs/scaling.md, "A put's NOTIFY to its PBX's holder"): PostgreSQL
 * (before 19) signals every session that listens on any channel of the database at every NOTIFY's commit, and each
 * then reads the queue, so a runner's four channels on four sessions cost the database four wake-ups per NOTIFY.
 */
import { PgConnection, type PgClient } from "@effect/sql-pg"
import { Effect, Exit, Queue, Schedule, Scope, Semaphore } from "effect"
import { describeCause } from "../StateStoreError.ts"

const again = Schedule.min([Schedule.exponential("500 millis"), Schedule.spaced("30 seconds")])

interface Session {
  readonly pinned: PgConnection.PgConnection
  readonly scope: Scope.Closeable
  users: number
  /** Its connection failed: the next listener opens a new session, this one closes with its last user. */
  dead: boolean
}

const sessions = new WeakMap<PgClient.PgClient, { current: Session | undefined; readonly lock: Semaphore.Semaphore }>()

/** The client's listening session, opened by its first user (or the first after a failure), closed by its last. */
const session = (sql: PgClient.PgClient) => {
  let state = sessions.get(sql)
  if (state === undefined) sessions.set(sql, state = { current: undefined, lock: Semaphore.makeUnsafe(1) })
  const held = state
  const open = Effect.gen(function*() {
    const current = held.current
    if (current !== undefined && !current.dead) {
      current.users += 1
      return current
    }
    const scope = yield* Scope.make()
    const pinned = yield* PgConnection.make(sql.config).pipe(
      Effect.flatMap((connection) => connection.pin),
      Scope.provide(scope),
      Effect.onError(() => Scope.close(scope, Exit.void))
    )
    return held.current = { pinned, scope, users: 1, dead: false }
  })
  const close = (s: Session) =>
    Effect.suspend(() => {
      s.users -= 1
      if (s.users > 0) return Effect.void
      if (held.current === s) held.current = undefined
      return Scope.close(s.scope, Exit.void)
    })
  return Effect.acquireRelease(held.lock.withPermit(open), (s) => held.lock.withPermit(close(s)))
}

export const listenForever = (
  sql: PgClient.PgClient,
  channel: string,
  onNotify: (payload: string) => Effect.Effect<void>,
  onListening: Effect.Effect<void>
) =>
  Effect.scoped(Effect.gen(function*() {
    const shared = yield* session(sql)
    const notifications = yield* shared.pinned.listen(channel).pipe(Effect.tapError(() => Effect.sync(() => void (shared.dead = true))))
    yield* onListening
    // Every notification already received is handled at once, not one per turn of the event loop: `Effect.forever`
    // yields between rounds by default, and on a busy runner a turn takes tens of milliseconds, which at tens of
    // notifications a second left them waiting for seconds (docs/scaling.md, "Where the time goes").
    return yield* Queue.takeAll(notifications).pipe(
      Effect.flatMap((received) => Effect.forEach(received, (n) => onNotify(n.payload), { discard: true })),
      Effect.forever({ disableYield: true }),
      Effect.tapError(() => Effect.sync(() => void (shared.dead = true)))
    )
  })).pipe(
    Effect.tapError((error) => Effect.logWarning(`state store: listening on ${channel} failed (${describeCause(error)}); listening again`)),
    Effect.retry(again),
    Effect.forkScoped,
    Effect.asVoid
  )
