/**
 * Whether the event loop has just been held long enough that a new connection may have waited in the listen queue
 * until its sender gave up. libuv takes every pending connection at each poll, so a connection waits there about one
 * turn of the loop: only after a turn of seconds can a first request come from a sender that has gone (Graph's client
 * gives up after 3 s: docs/protocol-notes.md). The webhook waits for the next poll to find such a sender only then
 * (WebhookNode.ts `unlessGone`), not on every new connection's first POST — a wait of a whole turn, which at a burst's
 * start, with every tenant's sender opening connections and the turns long, fell on the slowest changes.
 *
 * Measured with a timer's lateness in real time (`performance.now`): the loop's own delay, which a test's clock does
 * not have. One timer for the process, running while a server uses it (`watchLoop`, reference-counted).
 */
import { performance } from "node:perf_hooks"
import { Effect, type Scope } from "effect"

/** The watch's period: its timer is that late, plus `heldMillis`, after a held turn. */
export const tickMillis = 250

/** A turn at least this long counts as held: a third of Graph's 3 s. */
export const heldMillis = 1_000

/** How long after a held turn the connections it kept waiting may still bring their first POST. */
const afterHeldMillis = 2_000

interface Watch {
  lastTickAt: number
  heldAt: number
  users: number
  timer: ReturnType<typeof setInterval> | undefined
}

const watch: Watch = { lastTickAt: 0, heldAt: Number.NEGATIVE_INFINITY, users: 0, timer: undefined }

const tick = () => {
  const now = performance.now()
  if (now - watch.lastTickAt > tickMillis + heldMillis) watch.heldAt = now
  watch.lastTickAt = now
}

/**
 * True while the loop is held (the watch's timer overdue), in the `afterHeldMillis` after a held turn, and whenever no
 * watch runs (nothing known: the caller checks as if it had been held).
 */
export const loopWasHeld = (now: number = performance.now()): boolean =>
  watch.timer === undefined || now - watch.lastTickAt > tickMillis + heldMillis || now - watch.heldAt < afterHeldMillis

/** Keeps the process's watch running for the caller's scope. */
export const watchLoop: Effect.Effect<void, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => {
    if (watch.users++ > 0) return
    watch.lastTickAt = performance.now()
    watch.heldAt = Number.NEGATIVE_INFINITY
    watch.timer = setInterval(tick, tickMillis)
    watch.timer.unref()
  }),
  () =>
    Effect.sync(() => {
      if (--watch.users > 0 || watch.timer === undefined) return
      clearInterval(watch.timer)
      watch.timer = undefined
    })
)
