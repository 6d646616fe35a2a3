/**
 * LISTEN for the life of a scope on one reserved connection, listening again after a lost connection. Notifications
 * are only wake-ups: `onListening` runs after every (re)LISTEN so the caller re-reads what it may have missed.
 */
import type { PgClient } from "@effect/sql-pg"
import { Effect, Queue, Schedule } from "effect"
import { describeCause } from "../StateStoreError.ts"

const again = Schedule.min([Schedule.exponential("500 millis"), Schedule.spaced("30 seconds")])

export const listenForever = (
  sql: PgClient.PgClient,
  channel: string,
  onNotify: (payload: string) => Effect.Effect<void>,
  onListening: Effect.Effect<void>
) =>
  Effect.scoped(Effect.gen(function*() {
    const notifications = yield* sql.listen(channel)
    yield* onListening
    return yield* Queue.take(notifications).pipe(Effect.flatMap((n) => onNotify(n.payload)), Effect.forever)
  })).pipe(
    Effect.tapError((error) => Effect.logWarning(`state store: listening on ${channel} failed (${describeCause(error)}); listening again`)),
    Effect.retry(again),
    Effect.forkScoped,
    Effect.asVoid
  )
