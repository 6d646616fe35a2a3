/**
 * The metrics as Prometheus text exposition, written by effect's own exporter: the whole process (`/metrics` of the
 * public port, every tenant's series with its `tenant` label), or one tenant's series only (`/t/<id>/metrics`).
 */
import { Context, Effect, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"

/** Every series of the process (test/status/metrics.names.test.ts keeps their names). */
export const prometheusText: Effect.Effect<string> = PrometheusMetrics.format()

/** The series labelled `tenant=<tenant>` only: what one tenant's own `/metrics` shows. */
export const tenantPrometheusText = (tenant: string): Effect.Effect<string> =>
  Effect.map(Effect.context<never>(), (context) => {
    const registry = Context.get(context, Metric.MetricRegistry)
    const own: Metric.MetricRegistry = new Map([...registry].filter(([, series]) => series.attributes?.["tenant"] === tenant))
    return PrometheusMetrics.formatUnsafe(Context.add(context, Metric.MetricRegistry, own))
  })

/** The tenant label of the metrics updated here (the connector's `CurrentMetricAttributes`), if any. */
export const currentTenantLabel: Effect.Effect<string | undefined> = Effect.map(Metric.CurrentMetricAttributes, (attributes) => {
  const tenant = attributes["tenant"]
  return typeof tenant === "string" ? tenant : undefined
})
