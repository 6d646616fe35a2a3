/**
 * The tenant changes stream of both backends. A wake-up (a NOTIFY, a file event, a local write, or the periodic safety
 * read) only says "look again": the stream re-reads every tenant's version and emits the differences, so a lost
 * wake-up or a reconnect never loses a change, and a burst arrives folded.
 */
import { Effect, Queue, type Scope, Stream } from "effect"
import type { TenantChange, TenantId } from "./Records.ts"
import type { StateStoreError } from "./StateStoreError.ts"

export type Versions = ReadonlyMap<TenantId, number>

/** What changed between two reads. A version that went down means the tenant was removed and added again. */
export const diffTenants = (before: Versions, after: Versions): ReadonlyArray<TenantChange> => {
  const changes: Array<TenantChange> = []
  for (const [id, version] of after) {
    const previous = before.get(id)
    if (previous === undefined) changes.push({ kind: "added", id, version })
    else if (version < previous) changes.push({ kind: "removed", id, version: previous }, { kind: "added", id, version })
    else if (version > previous) changes.push({ kind: "updated", id, version })
  }
  for (const [id, version] of before) {
    if (!after.has(id)) changes.push({ kind: "removed", id, version })
  }
  return changes
}

/** How often the stream reads again without a wake-up (file events and notifications are not guaranteed). */
export const safetyInterval = "30 seconds"

/** Look again (from an effect, or from a callback such as a file watcher's). */
export interface Wake {
  readonly wake: Effect.Effect<void>
  readonly wakeUnsafe: () => void
}

/**
 * `watch` installs the backend's wake-ups for the life of the stream; it is in place before the first read, so
 * nothing written after the stream started is missed.
 */
export const tenantChanges = (
  read: Effect.Effect<Versions, StateStoreError>,
  watch: (wake: Wake) => Effect.Effect<void, StateStoreError, Scope.Scope>
): Stream.Stream<TenantChange, StateStoreError> =>
  Stream.unwrap(Effect.gen(function*() {
    const wakeups = yield* Queue.sliding<void>(1)
    const wake = Queue.offer(wakeups, undefined).pipe(Effect.asVoid)
    yield* watch({ wake, wakeUnsafe: () => void Queue.offerUnsafe(wakeups, undefined) })
    yield* wake.pipe(Effect.delay(safetyInterval), Effect.forever, Effect.forkScoped)
    let known: Versions = new Map()
    const look = read.pipe(Effect.map((next) => {
      const changes = diffTenants(known, next)
      known = next
      return changes
    }))
    return Stream.concat(Stream.succeed(undefined), Stream.fromQueue(wakeups)).pipe(
      Stream.mapEffect(() => look),
      Stream.flatMap((changes) => Stream.fromIterable(changes))
    )
  }))
