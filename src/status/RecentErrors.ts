/**
 * Keeps the last warnings and errors for the status page ("what went wrong, and what to do"). It is a logger, so every
 * module's `Effect.logWarning`/`logError` lands here without knowing about the status page; a `fix` log annotation,
 * when present, is shown as the advice.
 */
import { Context, Effect, Layer, Logger, References } from "effect"
import type { RecentError } from "./StatusBoard.ts"
import { scrubSecrets } from "../observability/Logging.ts"
import { explain } from "./Explain.ts"

export class RecentErrors extends Context.Service<RecentErrors, {
  readonly list: Effect.Effect<ReadonlyArray<RecentError>>
  readonly push: (error: RecentError) => void
}>()("teams-presence-connector/status/RecentErrors") {
  static readonly make = (capacity = 50) => {
    const buffer: Array<RecentError> = []
    return RecentErrors.of({
      list: Effect.sync(() => buffer.slice()),
      push: (error) => {
        // The same message repeated (a retry loop) keeps one entry, refreshed.
        const last = buffer[buffer.length - 1]
        if (last !== undefined && last.message === error.message) buffer.pop()
        buffer.push(error)
        if (buffer.length > capacity) buffer.shift()
      }
    })
  }

  static readonly layer = Layer.sync(RecentErrors, () => RecentErrors.make())
}

const text = (message: unknown): string =>
  Array.isArray(message) ? message.map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join(" ") : String(message)

/** A logger that copies Warn and worse into RecentErrors; add it next to the console logger. */
export const recentErrorsLogger = (errors: RecentErrors["Service"]) =>
  Logger.make(({ logLevel, message, date, fiber }) => {
    if (logLevel !== "Warn" && logLevel !== "Error" && logLevel !== "Fatal") return
    const annotations = fiber.getRef(References.CurrentLogAnnotations) as Readonly<Record<string, unknown>>
    const fix = annotations["fix"]
    const explained = explain(scrubSecrets(text(message)))
    errors.push({
      at: date.getTime(),
      level: logLevel === "Warn" ? "warning" : "error",
      message: explained.text,
      ...(explained.detail !== undefined ? { detail: explained.detail } : {}),
      ...(typeof fix === "string" ? { fix: scrubSecrets(fix) } : {})
    })
  })
