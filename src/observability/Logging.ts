/**
 * Structured logging: JSON lines when stdout is not a terminal (for log collectors), pretty lines on a terminal.
 * Secrets are held as `Redacted` everywhere; as a second line of defence every line passes a scrubber that masks
 * bearer tokens, JWTs and credential-looking fields before it is written.
 */
import { Layer, Logger, Option, References } from "effect"
import type * as LogLevel from "effect/LogLevel"

export type LogFormat = "auto" | "json" | "pretty"
export type LevelName = "trace" | "debug" | "info" | "warning" | "error"

const levels: Record<LevelName, LogLevel.LogLevel> = {
  trace: "Trace",
  debug: "Debug",
  info: "Info",
  warning: "Warn",
  error: "Error"
}

const secretPatterns: ReadonlyArray<[RegExp, string]> = [
  // JWTs (access tokens, client assertions, validation tokens).
  [/eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, "<redacted-jwt>"],
  [/(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}/gi, "$1<redacted>"],
  // key=value or "key":"value" forms of credential fields.
  [
    /("?(?:access_token|refresh_token|client_secret|client_assertion|password|device_code|id_token)"?\s*[:=]\s*"?)([^"&\s,}]+)/gi,
    "$1<redacted>"
  ]
]

/** Masks anything that looks like a credential. Applied to every rendered log line. */
export const scrubSecrets = (line: string): string =>
  secretPatterns.reduce((text, [pattern, replacement]) => text.replace(pattern, replacement), line)

const jsonLogger = Logger.map(Logger.formatJson, scrubSecrets).pipe(Logger.withConsoleLog)
const prettyLogger = Logger.consolePretty()

export const useJson = (format: LogFormat): boolean =>
  format === "json" || (format === "auto" && process.stdout.isTTY !== true)

/**
 * The process logger and minimum level: `override` (the command line's `--log-level`) when given, else `level` (the
 * configuration's log.level or CONNECTOR_LOG_LEVEL).
 */
export const loggingLayer = (options: {
  readonly level: LevelName
  readonly format: LogFormat
  readonly override?: Option.Option<LogLevel.LogLevel> | undefined
}) =>
  Layer.mergeAll(
    Logger.layer([useJson(options.format) ? jsonLogger : prettyLogger]),
    Layer.succeed(References.MinimumLogLevel, Option.getOrElse(options.override ?? Option.none(), () => levels[options.level]))
  )
