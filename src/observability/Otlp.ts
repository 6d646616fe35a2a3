/**
 * OpenTelemetry export (OTLP/HTTP) of the connector's traces, metrics and logs, with the OTLP modules that ship in
 * `effect`. Switched on by the standard variables only: `OTEL_EXPORTER_OTLP_ENDPOINT` (or a per-signal
 * `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT`); without one nothing is exported.
 * `OTEL_SERVICE_NAME` (default `teams-presence-connector`) and `OTEL_RESOURCE_ATTRIBUTES` name the service,
 * `OTEL_EXPORTER_OTLP_PROTOCOL` chooses `http/protobuf` (the default) or `http/json`, `OTEL_EXPORTER_OTLP_HEADERS`
 * adds headers, `OTEL_{TRACES,METRICS,LOGS}_EXPORTER=none` turns one signal off, `OTEL_SDK_DISABLED=true` all of them.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { ConfigProvider, Effect, Layer, Logger } from "effect"
import { Otlp, OtlpExporter, OtlpSerialization } from "effect/observability"
import packageJson from "../../package.json" with { type: "json" }
import { scrubSecrets } from "./Logging.ts"

type Env = Readonly<Record<string, string | undefined>>

const signals = ["TRACES", "METRICS", "LOGS"] as const

const set = (env: Env, name: string): boolean => (env[name] ?? "").trim() !== ""

/** Whether the environment asks for an export at all. */
export const otlpEnabled = (env: Env): boolean =>
  env["OTEL_SDK_DISABLED"]?.trim().toLowerCase() !== "true" &&
  (set(env, "OTEL_EXPORTER_OTLP_ENDPOINT") || signals.some((signal) => set(env, `OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`)))

/**
 * The environment as the exporters read it, with the specification's defaults where `effect`'s differ or the
 * connector has its own: a signal is exported unless `OTEL_<SIGNAL>_EXPORTER` says otherwise (effect exports none
 * unless told), the service is named after the package unless the environment names it.
 */
export const exporterEnvironment = (env: Env): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(env)) if (value !== undefined && name.startsWith("OTEL_")) out[name] = value
  for (const signal of signals) out[`OTEL_${signal}_EXPORTER`] ??= "otlp"
  const namedInAttributes = /(^|,)\s*service\.name\s*=/.test(env["OTEL_RESOURCE_ATTRIBUTES"] ?? "")
  if (!set(env, "OTEL_SERVICE_NAME") && !namedInAttributes) out["OTEL_SERVICE_NAME"] = "teams-presence-connector"
  out["OTEL_SERVICE_VERSION"] ??= packageJson.version
  return out
}

/** A logger that hands `inner` the message with anything credential-like masked, as the console logger does. */
const scrubbing = (inner: Logger.Logger<unknown, unknown>): Logger.Logger<unknown, unknown> =>
  Logger.make((options) => {
    const message = options.message
    const scrubbed = typeof message === "string"
      ? scrubSecrets(message)
      : Array.isArray(message)
      ? message.map((part) => (typeof part === "string" ? scrubSecrets(part) : part))
      : message
    return inner.log({ ...options, message: scrubbed })
  })

/** Every logger in place gets its message through the scrubber first (the console logger also scrubs its output). */
const scrubbedLoggers = Layer.effect(
  Logger.CurrentLoggers,
  Effect.withFiber((fiber) => Effect.succeed(new Set([...fiber.getRef(Logger.CurrentLoggers)].map(scrubbing))))
)

/**
 * The OTLP layer for `env`: traces (the Tracer), metrics (every metric, exported periodically) and logs (a logger
 * added to the ones in place), or nothing when no endpoint is set.
 */
export const otlpLayer = (env: Env = process.env): Layer.Layer<OtlpExporter.Flusher> => {
  if (!otlpEnabled(env)) return OtlpExporter.layerFlusher
  const serialization = env["OTEL_EXPORTER_OTLP_PROTOCOL"]?.trim() === "http/json"
    ? OtlpSerialization.layerJson
    : OtlpSerialization.layerProtobuf
  return Otlp.layerFromConfig().pipe(
    Layer.provide([serialization, NodeHttpClient.layerUndici]),
    Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: exporterEnvironment(env) })))
  )
}

/** Where the export goes and as which service, for the start-up log: no query, user info or headers (they may hold keys). */
export const describeOtlp = (env: Env): string | undefined => {
  if (!otlpEnabled(env)) return undefined
  const exported = exporterEnvironment(env)
  const endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"] ?? signals.map((s) => env[`OTEL_EXPORTER_OTLP_${s}_ENDPOINT`]).find((e) => e !== undefined) ?? ""
  const where = URL.canParse(endpoint) ? (({ origin, pathname }) => origin + pathname)(new URL(endpoint)) : "(an endpoint that is not a URL)"
  const on = signals.filter((s) => exported[`OTEL_${s}_EXPORTER`]?.toLowerCase().includes("otlp")).map((s) => s.toLowerCase())
  return `OpenTelemetry: exporting ${on.join(", ") || "nothing"} over OTLP/HTTP to ${where}` +
    (exported["OTEL_SERVICE_NAME"] !== undefined ? ` as ${exported["OTEL_SERVICE_NAME"]}` : "")
}

/** The process's logging with the OTLP export added when the environment asks for it (and `logging` alone when not). */
export const withOtlp = (logging: Layer.Layer<never>, env: Env = process.env): Layer.Layer<OtlpExporter.Flusher> =>
  otlpEnabled(env) ? scrubbedLoggers.pipe(Layer.provideMerge(otlpLayer(env)), Layer.provideMerge(logging))
    : Layer.merge(logging, OtlpExporter.layerFlusher)
