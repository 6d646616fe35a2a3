/**
 * A cluster writer's send fence (docs/scaling.md, "One writer per user"). A PBX side's writer holds each user's command
 * as its sender handed it over, and would send it again on its own: a retry after a refusal, the re-send on a PBX's
 * login or on a user-table change, a write that waited for its PBX or for a free place. Meanwhile the owner may have
 * keyed the user to another PBX whose socket another runner holds, which writes the user from then on.
 *
 * So a fenced writer sends a command without another look only once, within `freshMs` of its hand-over (the sender's
 * read of the store: normally the same turn); every other turn first goes through `check` — the users waiting are
 * checked together, one read per batch — and a command that is no longer this writer's is forgotten (WriterState
 * `forget`), its retry cancelled. The first send after a hand-over costs nothing more: its read was the check.
 */
import { Clock, Effect, FiberMap, Latch, type Scope } from "effect"
import { clip } from "../../domain/LogText.ts"
import { type Dispatcher, wakeFor } from "./Dispatcher.ts"
import type { DesiredPresence, Fence } from "./WriterState.ts"

/** A command handed over this long ago or less is sent without a check. */
export const freshMs = 1_000

/** A failed check (the store not answering) is tried again after this long; meanwhile nothing waiting is sent. */
const checkAgain = "1 second"

/** One batch: the users waiting, checked; the kept sent (fresh), the others forgotten. */
const checkWaiting = Effect.fnUntraced(function*(dispatcher: Dispatcher, fence: Fence) {
  const { state } = dispatcher
  const held = new Map<string, DesiredPresence>()
  for (const guid of fence.waiting) {
    const entry = state.desired.get(guid)
    if (entry !== undefined) held.set(guid, entry)
  }
  fence.waiting.clear()
  if (held.size === 0) return
  fence.checking = true
  const result = yield* fence.check(new Map([...held].map(([guid, entry]) => [guid, entry.command]))).pipe(Effect.result)
  fence.checking = false
  if (result._tag === "Failure") {
    for (const guid of held.keys()) fence.waiting.add(guid)
    yield* Effect.logWarning(`checking ${held.size} users' PBX commands before sending them again failed: ${clip(String(result.failure), 300)}`)
    return yield* Effect.andThen(Effect.sleep(checkAgain), Latch.open(fence.wake))
  }
  const now = yield* Clock.currentTimeMillis
  const kept: Array<string> = []
  const forgotten: Array<string> = []
  for (const [guid, entry] of held) {
    // A newer command handed over meanwhile is sent as such (its hand-over read it).
    if (state.desired.get(guid) !== entry) continue
    if (result.success.has(guid)) {
      state.markFresh(guid, now)
      kept.push(guid)
    } else {
      state.forget(guid)
      forgotten.push(guid)
      yield* FiberMap.remove(dispatcher.retries, guid)
    }
  }
  if (forgotten.length > 0) {
    yield* Effect.logInfo(
      `${forgotten.length} users' PBX commands forgotten, not sent again: another PBX's holder writes them now, or a newer command comes: ${clip(forgotten.join(", "), 300)}`
    )
  }
  yield* wakeFor(dispatcher, kept)
})

/**
 * Fences `dispatcher` with `check` for as long as the scope lasts (checked in a fiber of the scope). Without a fence the
 * writer sends as one process does.
 */
export const installFence = Effect.fn("PresenceWriter.fence")(function*(dispatcher: Dispatcher, check: Fence["check"]): Effect.fn.Return<void, never, Scope.Scope> {
  const fence: Fence = { check, freshMs, waiting: new Set(), checking: false, wake: yield* Latch.make(false) }
  dispatcher.fence = fence
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      if (dispatcher.fence === fence) dispatcher.fence = undefined
      Latch.openUnsafe(dispatcher.wake)
    })
  )
  yield* Effect.gen(function*() {
    while (true) {
      yield* Latch.await(fence.wake)
      yield* Latch.close(fence.wake)
      yield* checkWaiting(dispatcher, fence)
      // The dispatcher decides again whether it is idle (nothing waits for a check any more).
      yield* Latch.open(dispatcher.wake)
    }
  }).pipe(Effect.forkScoped)
})
