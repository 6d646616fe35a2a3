/**
 * LISTEN for the life of a scope on one reserved connection, listening again after a lost connection. Notifications
 * are only wake-ups: `onListening` runs after every (re)LISTEN so the caller re-reads what it may have missed.
 * Whatever has arrived is handled in one go (`onNotify` for each, in order), without yielding between them.
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
    // Every notification already received is handled at once, not one per turn of the event loop: `Effect.forever`
    // yields between rounds by default, and on a busy runner a turn takes tens of milliseconds, which at tens of
    // notifications a second left them waiting for seconds (docs/scaling.md, "Where the time goes").
    return yield* Queue.takeAll(notifications).pipe(
      Effect.flatMap((received) => Effect.forEach(received, (n) => onNotify(n.payload), { discard: true })),
      Effect.forever({ disableYield: true })
    )
  })).pipe(
    Effect.tapError((error) => Effect.logWarning(`state store: listening on ${channel} failed (${describeCause(error)}); listening again`)),
    Effect.retry(again),
    Effect.forkScoped,
    Effect.asVoid
  )
