/**
 * Reads of users named by notifications the connector did not decrypt: basic notifications, and in a flood the rich
 * items the decryption backlog could not take within its latency budget (src/graph/notifications/FloodGate.ts). A few
 * readers each take up to `maxPerRead` of the users waiting when they start; users asked for while every reader is
 * busy wait for the next free one, so a flood of thousands of items becomes a few getPresencesByUserId requests of up
 * to 650 users each (PresenceReader rate-limits them), not one request per webhook POST. Each read carries the time it
 * was issued: what it returns makes every pushed item received before that time obsolete (PresenceState.ts decides,
 * with the sequenceNumber first).
 */
import { Clock, Effect, Queue } from "effect"
import { teamsKey } from "../../domain/TeamsId.ts"

export interface FloodFallbackOptions {
  /** Reads `ids`, issued at `requestedAt` (Clock ms); failures are the reader's to handle (ReadRetry.ts). */
  readonly read: (ids: ReadonlyArray<string>, requestedAt: number) => Effect.Effect<void>
  /** Users per read (Graph: ≤ 650 per getPresencesByUserId). */
  readonly maxPerRead: number
  /** Reads under way at once. */
  readonly readers: number
}

export interface FloodFallback {
  /** Asks for these users to be read; returns at once. */
  offer(userIds: ReadonlyArray<string>): Effect.Effect<void>
  /** Users asked for and not yet read. */
  readonly waiting: Effect.Effect<number>
}

/** The reader with its fiber forked into the current scope. */
export const makeFloodFallback = Effect.fnUntraced(function*(options: FloodFallbackOptions) {
  // By Teams key, first asked first read; a user asked for twice before the read is read once.
  const wanted = new Map<string, string>()
  const wake = yield* Queue.sliding<void>(1)
  const nextRead = (): ReadonlyArray<string> => {
    const ids: Array<string> = []
    for (const [key, id] of wanted) {
      if (ids.length >= options.maxPerRead) break
      ids.push(id)
      wanted.delete(key)
    }
    return ids
  }
  const reader = Effect.gen(function*() {
    yield* Queue.take(wake)
    while (wanted.size > 0) {
      const ids = nextRead()
      // More than one read's worth waiting: wake another reader for the rest.
      if (wanted.size > 0) yield* Queue.offer(wake, undefined)
      yield* options.read(ids, yield* Clock.currentTimeMillis)
    }
  }).pipe(Effect.forever)
  for (let i = 0; i < Math.max(1, options.readers); i++) yield* Effect.forkScoped(reader)
  return {
    offer: (userIds) =>
      Effect.suspend(() => {
        if (userIds.length === 0) return Effect.void
        for (const id of userIds) wanted.set(teamsKey(id), id)
        return Queue.offer(wake, undefined).pipe(Effect.asVoid)
      }),
    waiting: Effect.sync(() => wanted.size)
  } satisfies FloodFallback
})
