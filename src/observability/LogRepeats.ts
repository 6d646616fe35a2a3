/**
 * Repeated warnings are rate-limited: the first warning or error of a kind in a window is written, the repeats are
 * counted, and when the window has passed one line says how many were left out ("… 3,122 more in the last minute").
 * A kind is the `logKey` annotation when a line has one (e.g. one per source for refused logins; such lines are limited
 * at any level), else the line's level and text. The gate sits in front of every logger of the connector (console and "Recent errors"), so a flood of
 * bad requests costs a few lines a minute, wherever it comes from.
 */
import { Clock, Effect, Layer, Logger, References } from "effect"
import type * as LogLevel from "effect/LogLevel"
import { count } from "../domain/LogText.ts"
import { every } from "../graph/presence/PollSchedule.ts"

export interface RepeatGateOptions {
  readonly windowMillis: number
  /** Kinds tracked at once; beyond this, new kinds share one entry (a flood of distinct sources stays bounded). */
  readonly maxKinds: number
}

export const defaultRepeatGateOptions: RepeatGateOptions = { windowMillis: 60_000, maxKinds: 1_000 }

/** Annotation that names a line's kind; lines of one kind are rate-limited together. */
export const logKey = "logKey"
/** Annotation on the summary lines, which pass the gate. */
const summaryMark = "repeated"

interface Kind {
  windowStart: number
  suppressed: number
  readonly level: LogLevel.LogLevel
  readonly text: string
}

interface Summary {
  readonly level: LogLevel.LogLevel
  readonly text: string
  readonly suppressed: number
  readonly key: string
}

const messageText = (message: unknown): string =>
  Array.isArray(message) ? message.map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join(" ") : String(message)

const limited = (level: LogLevel.LogLevel) => level === "Warn" || level === "Error" || level === "Fatal"

const windowWords = (millis: number) => (millis === 60_000 ? "the last minute" : `the last ${Math.round(millis / 1000)} s`)

/** The gate's state and decisions; `admit` runs synchronously inside the logger, `due` in the flushing fiber. */
export const makeRepeatGate = (options: RepeatGateOptions = defaultRepeatGateOptions) => {
  const kinds = new Map<string, Kind>()
  const pending: Array<Summary> = []
  const overflowKey = "(other repeated warnings)"

  const close = (key: string, kind: Kind) => {
    if (kind.suppressed > 0) pending.push({ level: kind.level, text: kind.text, suppressed: kind.suppressed, key })
  }

  /** Whether a line passes; a suppressed one is counted for its kind's summary. */
  const admit = (key: string, level: LogLevel.LogLevel, text: string, now: number): boolean => {
    let kind = kinds.get(key)
    if (kind === undefined && kinds.size >= options.maxKinds) {
      for (const [k, v] of kinds) {
        if (now - v.windowStart < options.windowMillis) continue
        close(k, v)
        kinds.delete(k)
      }
      if (kinds.size >= options.maxKinds) return admit(overflowKey, level, overflowKey, now)
    }
    if (kind === undefined) {
      kinds.set(key, { windowStart: now, suppressed: 0, level, text })
      return true
    }
    if (now - kind.windowStart < options.windowMillis) {
      kind.suppressed++
      return false
    }
    close(key, kind)
    kinds.set(key, { windowStart: now, suppressed: 0, level, text })
    return true
  }

  /** The summaries of the windows that have passed (and forgets their kinds). */
  const due = (now: number): ReadonlyArray<Summary> => {
    for (const [key, kind] of kinds) {
      if (now - kind.windowStart < options.windowMillis) continue
      close(key, kind)
      kinds.delete(key)
    }
    return pending.splice(0, pending.length)
  }

  return { admit, due, options }
}

export type RepeatGate = ReturnType<typeof makeRepeatGate>

/** One logger that lets a line through the gate and hands it to every one of `inner`. */
export const gatedLogger = (gate: RepeatGate, inner: ReadonlyArray<Logger.Logger<unknown, unknown>>) =>
  Logger.make((options) => {
    const annotations = options.fiber.getRef(References.CurrentLogAnnotations) as Readonly<Record<string, unknown>>
    const explicit = annotations[logKey]
    // Warnings and errors are limited by their text; a line that names its kind, at any level.
    if ((typeof explicit === "string" || limited(options.logLevel)) && annotations[summaryMark] === undefined) {
      const text = messageText(options.message)
      const key = typeof explicit === "string" ? explicit : `${options.logLevel}:${text}`
      if (!gate.admit(key, options.logLevel, text, options.date.getTime())) return
    }
    for (const logger of inner) logger.log(options)
  })

const logAt = (level: LogLevel.LogLevel, text: string) => Effect.logWithLevel(level === "All" || level === "None" ? "Info" : level)(text)

/** Writes the summaries of the windows that have passed. */
export const flushRepeats = Effect.fnUntraced(function*(gate: RepeatGate) {
  const now = yield* Clock.currentTimeMillis
  for (const summary of gate.due(now)) {
    yield* logAt(summary.level, `${summary.text} … ${count(summary.suppressed)} more in ${windowWords(gate.options.windowMillis)}`).pipe(
      Effect.annotateLogs({ [summaryMark]: summary.suppressed, [logKey]: summary.key })
    )
  }
})

/**
 * Puts the gate in front of the loggers in place (plus `extra`), and a fiber that writes the summaries every few
 * seconds and once more when the layer stops.
 */
export const repeatGateLayer = (gate: RepeatGate, extra: ReadonlyArray<Logger.Logger<unknown, unknown>> = []) => {
  const loggers = Layer.effect(
    Logger.CurrentLoggers,
    Effect.withFiber((fiber) =>
      Effect.succeed(new Set([gatedLogger(gate, [...fiber.getRef(Logger.CurrentLoggers), ...extra])]) as ReadonlySet<Logger.Logger<unknown, any>>)
    )
  )
  const flusher = Layer.effectDiscard(Effect.gen(function*() {
    yield* Effect.addFinalizer(() => flushRepeats(gate))
    yield* every(Math.min(5_000, gate.options.windowMillis), flushRepeats(gate)).pipe(Effect.forkScoped)
  }))
  // The flusher logs through the gate too, so its summaries reach every logger behind it.
  return flusher.pipe(Layer.provideMerge(loggers))
}
