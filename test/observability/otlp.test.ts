/**
 * OpenTelemetry export (src/observability/Otlp.ts) against a small OTLP/HTTP receiver started by the test, with the
 * embedded demo over real sockets: one presence change set in the Graph simulator arrives as one trace from the
 * webhook to the PBX's SetPresence (webhook → decrypt → map → SetPresence, each the parent of the next); metrics and
 * logs arrive too, under the service named by OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; no secret is in anything
 * exported. Without an endpoint nothing is set up.
 */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Layer, Redacted, Tracer } from "effect"
import { startDemo } from "../../src/demo/Demo.ts"
import { loggingLayer } from "../../src/observability/Logging.ts"
import { describeOtlp, exporterEnvironment, otlpEnabled, withOtlp } from "../../src/observability/Otlp.ts"
import { until as poll } from "../support/waiting.ts"
import { attribute, type OtlpSpan, startOtlpReceiver } from "./otlpReceiver.ts"
import { makeTempDir } from "../support/tempDir.ts"

const adminPassword = "otlp-test-admin-password"
/** What the demo configures as secrets (src/demo/Demo.ts), and the admin password of this test. */
const demoSecrets = ["demo-secret", "demo-password", "demo-app-object-password", adminPassword]
const jwt = /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\./

const tempDir = makeTempDir("tpc-otlp-")

const chain = ["NotificationRoutes.notifications", "NotificationsInbox.decrypt", "Flow.map", "PresenceWriter.SetPresence"] as const

/** The spans of the trace whose SetPresence wrote `command`, once all four are in. */
const traceOf = (spans: ReadonlyArray<OtlpSpan>, command: string) => {
  const write = spans.find((s) => s.name === "PresenceWriter.SetPresence" && attribute(s.attributes, "pbx.command") === command)
  if (write === undefined) return undefined
  const trace = spans.filter((s) => s.traceId === write.traceId)
  return chain.every((name) => trace.some((s) => s.name === name)) ? trace : undefined
}

describe("OpenTelemetry over OTLP/HTTP", () => {
  it.live("one presence change is one trace from the webhook to SetPresence; metrics and logs follow; nothing secret", () =>
    Effect.scoped(Effect.gen(function*() {
      const receiver = yield* startOtlpReceiver
      const env = {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_SERVICE_NAME: "presence-connector-test",
        OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=test,service.namespace=telephony",
        // Short intervals, so the test waits for exports, not for timers.
        OTEL_BSP_SCHEDULE_DELAY: "100",
        OTEL_BLRP_SCHEDULE_DELAY: "100",
        OTEL_METRIC_EXPORT_INTERVAL: "300"
      }
      const telemetry = yield* Layer.build(withOtlp(loggingLayer({ level: "info", format: "json" }), env))
      const dataDir = yield* tempDir
      const demo = yield* startDemo({ port: 0, adminPassword: Redacted.make(adminPassword), dataDir, userCount: 4, changeEverySeconds: 0 })
        .pipe(Effect.provide(telemetry))
      yield* poll("all lights green", Effect.promise(() => fetch(demo.url + "/readyz").then((r) => (r.ok ? true : undefined))), 30_000)

      const user = demo.teamsUserIds[1]!
      yield* demo.graph.setPresence(user, { availability: "Busy", activity: "InAMeeting" })
      const trace = yield* receiver.until((received) => traceOf(received.spans, "meeting"))

      const byName = new Map(trace.map((span) => [span.name, span]))
      const [webhook, decrypt, map, write] = chain.map((name) => byName.get(name)!)
      assert.strictEqual(new Set([webhook, decrypt, map, write].map((s) => s!.traceId)).size, 1, "one trace")
      assert.strictEqual(decrypt!.parentSpanId, webhook!.spanId, "decrypt below the webhook")
      assert.strictEqual(map!.parentSpanId, decrypt!.spanId, "the mapping below the decryption")
      assert.strictEqual(write!.parentSpanId, map!.spanId, "SetPresence below the mapping")
      assert.strictEqual(attribute(write!.attributes, "pbx.name"), "pbx-slave", "user 2 lives on the slave")
      // The webhook's request is the HTTP server's span, in the same trace.
      assert.isTrue(trace.some((s) => s.spanId === webhook!.parentSpanId && s.name === "POST"), "below the HTTP server span")
      assert.strictEqual(trace.filter((s) => s.name === "PresenceWriter.SetPresence").length, 1, "one write for one change")

      // The service as the environment names it.
      const resource = receiver.received.resources[0]!
      assert.strictEqual(attribute(resource, "service.name"), "presence-connector-test")
      assert.strictEqual(attribute(resource, "deployment.environment"), "test")
      assert.strictEqual(attribute(resource, "service.namespace"), "telephony")

      // Metrics and logs arrive as well.
      yield* receiver.until((received) => (received.bodies.metrics.some((b) => b.includes("connector_pbx_writes_total")) ? true : undefined))
      yield* receiver.until((received) => (received.bodies.logs.some((b) => b.includes("light masterPbx is green")) ? true : undefined))

      // No secret in anything exported: configured secrets, the subscriptions' clientStates, tokens.
      const store = JSON.parse(readFileSync(join(dataDir, "subscriptions.json"), "utf8")) as unknown
      const clientStates = JSON.stringify(store).match(/"clientState":"([^"]+)"/g)?.map((m) => m.slice(15, -1)) ?? []
      assert.isAtLeast(clientStates.length, 1, "the store names the subscriptions' clientStates")
      const exported = [...receiver.received.bodies.traces, ...receiver.received.bodies.metrics, ...receiver.received.bodies.logs]
      for (const body of exported) {
        for (const secret of [...demoSecrets, ...clientStates]) assert.notInclude(body, secret)
        assert.notMatch(body, jwt)
      }
    })), { timeout: 60_000 })

  it("only the standard variables switch it on; the service is named after the package unless the environment names it", () => {
    assert.isFalse(otlpEnabled({}))
    assert.isFalse(otlpEnabled({ OTEL_SERVICE_NAME: "x" }))
    assert.isTrue(otlpEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }))
    assert.isTrue(otlpEnabled({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://collector:4318/v1/traces" }))
    assert.isFalse(otlpEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_SDK_DISABLED: "true" }))
    const defaults = exporterEnvironment({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", PATH: "/bin" })
    assert.strictEqual(defaults["OTEL_SERVICE_NAME"], "teams-presence-connector")
    assert.strictEqual(defaults["OTEL_TRACES_EXPORTER"], "otlp")
    assert.isUndefined(defaults["PATH"], "only OTEL_ variables reach the exporters")
    const named = exporterEnvironment({ OTEL_RESOURCE_ATTRIBUTES: "service.name=pbx-presence", OTEL_LOGS_EXPORTER: "none" })
    assert.isUndefined(named["OTEL_SERVICE_NAME"])
    assert.strictEqual(named["OTEL_LOGS_EXPORTER"], "none")
    assert.strictEqual(
      describeOtlp({ OTEL_EXPORTER_OTLP_ENDPOINT: "https://user:key@collector.example.com:4318/otlp?token=abc", OTEL_LOGS_EXPORTER: "none" }),
      "OpenTelemetry: exporting traces, metrics over OTLP/HTTP to https://collector.example.com:4318/otlp as teams-presence-connector"
    )
  })

  it.effect("without an endpoint the tracer stays Effect's own and nothing is exported", () =>
    Effect.gen(function*() {
      const tracer = yield* Effect.gen(function*() {
        return yield* Tracer.Tracer
      }).pipe(Effect.provide(withOtlp(loggingLayer({ level: "info", format: "json" }), {})))
      assert.strictEqual(tracer, Tracer.nativeTracer)
    }))
})
