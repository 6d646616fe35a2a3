/**
 * A Clock that runs at real speed until told to run faster: for a stretch of time that would be too long for a test
 * (an outage of minutes), every time reading and every sleep of the parts that use it — the connector's backoffs,
 * retries, verification cadence, its "red after five minutes", and the Graph simulator's own timers when given the
 * same clock — scale together, so the order and the number of their steps are as in real time. Nothing else in the
 * process (other tenants, the PBX simulators, the test's own waits) is affected.
 * Time read from it never goes backwards: after a fast stretch it is ahead of the wall clock by what was skipped.
 */
import { Clock, Duration, Effect } from "effect"
import { performance } from "node:perf_hooks"

interface Sleeper {
  readonly wakeAt: number
  readonly wake: () => void
  timer: ReturnType<typeof setTimeout> | undefined
}

export interface WarpClock {
  readonly clock: Clock.Clock
  /** Time runs `speed` times as fast from now on (1 = real time). Pending sleeps are rescheduled. */
  readonly setSpeed: (speed: number) => void
  /** How far ahead of real time the clock is (milliseconds). */
  readonly aheadMillis: () => number
}

export const makeWarpClock = (): WarpClock => {
  const wallAtStart = Date.now()
  const realAtStart = performance.now()
  // The clock's reading is anchor.time + (real elapsed since anchor.real) × speed.
  let anchor = { real: realAtStart, time: wallAtStart }
  let speed = 1
  const sleepers = new Set<Sleeper>()

  const now = () => anchor.time + (performance.now() - anchor.real) * speed
  const arm = (sleeper: Sleeper) => {
    if (sleeper.timer !== undefined) clearTimeout(sleeper.timer)
    sleeper.timer = setTimeout(() => {
      sleepers.delete(sleeper)
      sleeper.wake()
    }, Math.max(0, (sleeper.wakeAt - now()) / speed))
  }

  const sleepMillis = (millis: number): Effect.Effect<void> => {
    if (millis <= 0) return Effect.yieldNow
    if (!Number.isFinite(millis)) return Effect.never
    return Effect.callback<void>((resume) => {
      const sleeper: Sleeper = { wakeAt: now() + millis, wake: () => resume(Effect.void), timer: undefined }
      sleepers.add(sleeper)
      arm(sleeper)
      return Effect.sync(() => {
        sleepers.delete(sleeper)
        if (sleeper.timer !== undefined) clearTimeout(sleeper.timer)
      })
    })
  }

  const nanos = () => BigInt(Math.round(now() * 1_000_000))
  const clock: Clock.Clock = {
    currentTimeMillisUnsafe: () => Math.floor(now()),
    currentTimeMillis: Effect.sync(() => Math.floor(now())),
    currentTimeNanosUnsafe: nanos,
    currentTimeNanos: Effect.sync(nanos),
    monotonicTimeNanosUnsafe: nanos,
    monotonicTimeNanos: Effect.sync(nanos),
    sleep: (duration) => sleepMillis(Duration.toMillis(duration))
  }

  return {
    clock,
    setSpeed: (next) => {
      anchor = { real: performance.now(), time: now() }
      speed = next
      for (const sleeper of sleepers) arm(sleeper)
    },
    aheadMillis: () => now() - (wallAtStart + (performance.now() - realAtStart))
  }
}
