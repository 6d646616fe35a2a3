/**
 * A metric's series per tenant (src/domain/Metrics.ts `perTenant`, `perTenantBy`): updates from many tenants'
 * contexts, interleaved, land in each tenant's own series with its labels, as `Metric.withAttributes` on one shared
 * metric did — with one metric object per tenant made once, so that no update builds a series key again.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { notificationStages, notificationStageSecondsOf, perTenant, perTenantBy, prepareNotificationSeries, webhookResponseSecondsOf } from "../../src/domain/Metrics.ts"

const inTenant = <A, E, R>(tenant: string, effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, Metric.CurrentMetricAttributes, { tenant })

/** The Prometheus text's row of `name` (a histogram's `_count`, or a counter) that carries every one of `labels`. */
const seriesRow = (text: string, name: string, labels: ReadonlyArray<string>) =>
  text.split("\n").find((row) => row.startsWith(`${name}{`) && labels.every((label) => row.includes(label)))

/** A per-tenant histogram (boundaries 1 and 2) that counts the metric objects it makes, one per tenant. */
const countedHistogram = (name: string) => {
  const series = { made: 0 }
  const observed = perTenant(() => {
    series.made++
    return Metric.histogram(name, { boundaries: [1, 2] })
  })
  return { observed, series }
}

describe("metric series per tenant", () => {
  it.effect("interleaved updates of 5 tenants land in each tenant's series, with the label of perTenantBy", () =>
    Effect.gen(function*() {
      const made: Array<string> = []
      const counted = perTenantBy((kind: "a" | "b") => {
        made.push(kind)
        return Metric.counter("test_per_tenant_total", { incremental: true, attributes: { kind } })
      })
      const tenants = ["t0", "t1", "t2", "t3", "t4"]
      // Each tenant's fiber keeps one attribute set, as a connector's layer provides it (Connector.ts).
      const contexts = tenants.map((tenant) => Context.add(Context.empty(), Metric.CurrentMetricAttributes, { tenant }))
      const registry = yield* Metric.MetricRegistry
      for (let round = 0; round < 20; round++) {
        tenants.forEach((_, i) => {
          counted("a").updateUnsafe(i + 1, Context.add(contexts[i]!, Metric.MetricRegistry, registry))
        })
        yield* inTenant("t2", counted("b").update(1))
      }
      for (const [i, tenant] of tenants.entries()) {
        const state = yield* inTenant(tenant, Metric.value(Metric.withAttributes(Metric.counter("test_per_tenant_total", { incremental: true }), { kind: "a" })))
        assert.strictEqual(Number(state.count), 20 * (i + 1), tenant)
      }
      const b = yield* inTenant("t2", Metric.value(Metric.withAttributes(Metric.counter("test_per_tenant_total", { incremental: true }), { kind: "b" })))
      assert.strictEqual(Number(b.count), 20)
      // One metric object per tenant and label: 5 tenants of "a", one of "b" (in a context made per update).
      assert.deepStrictEqual(made.sort(), ["a", "a", "a", "a", "a", "b"])
    }))

  it.effect("a tenant's attribute set given as a new object each time finds the series made for its labels", () =>
    Effect.gen(function*() {
      const { observed, series } = countedHistogram("test_per_tenant_seconds")
      for (let i = 0; i < 10; i++) yield* inTenant(i % 2 === 0 ? "x" : "y", observed.update(1.5))
      assert.strictEqual(series.made, 2)
      const x = yield* inTenant("x", Metric.value(Metric.histogram("test_per_tenant_seconds", { boundaries: [1, 2] })))
      assert.strictEqual(x.count, 5)
    }))

  it.effect("the connector's per-tenant series render as the shared metric's did: one series per tenant and label", () =>
    Effect.gen(function*() {
      yield* inTenant("alpha", notificationStageSecondsOf("intake").update(0.003))
      yield* inTenant("beta", notificationStageSecondsOf("intake").update(0.003))
      yield* inTenant("alpha", notificationStageSecondsOf("held").update(0.5))
      yield* inTenant("alpha", webhookResponseSecondsOf("produced").update(0.0004))
      const text = yield* PrometheusMetrics.format()
      const line = (name: string, labels: string) => seriesRow(text, `${name}_count`, labels.split(","))
      assert.match(line("connector_notification_stage_seconds", 'stage="intake",tenant="alpha"') ?? "", / 1$/)
      assert.match(line("connector_notification_stage_seconds", 'stage="intake",tenant="beta"') ?? "", / 1$/)
      assert.match(line("connector_notification_stage_seconds", 'stage="held",tenant="alpha"') ?? "", / 1$/)
      assert.match(line("connector_webhook_response_seconds", 'until="produced",tenant="alpha"') ?? "", / 1$/)
      assert.isUndefined(line("connector_notification_stage_seconds", 'stage="held",tenant="beta"'))
    }))
})

describe("a tenant's series made before its first update", () => {
  it.effect("prepare makes the tenant's series (0 until updated) and the first update lands in it without making another", () =>
    Effect.gen(function*() {
      const { observed, series } = countedHistogram("test_prepared_seconds")
      const registry = yield* Metric.MetricRegistry
      const context = Context.add(Context.add(Context.empty(), Metric.CurrentMetricAttributes, { tenant: "p" }), Metric.MetricRegistry, registry)
      const before = registry.size
      observed.prepare(context)
      assert.strictEqual(series.made, 1)
      assert.strictEqual(registry.size, before + 1, "the series is in the registry")
      const empty = yield* inTenant("p", Metric.value(Metric.histogram("test_prepared_seconds", { boundaries: [1, 2] })))
      assert.strictEqual(empty.count, 0)
      observed.updateUnsafe(1.5, context)
      assert.strictEqual(series.made, 1, "no second metric object")
      assert.strictEqual(registry.size, before + 1, "no second series")
      const after = yield* inTenant("p", Metric.value(Metric.histogram("test_prepared_seconds", { boundaries: [1, 2] })))
      assert.strictEqual(after.count, 1)
    }))

  it.effect("prepareNotificationSeries shows each per-notification series of the tenant at 0 before any notification", () =>
    Effect.gen(function*() {
      const context = yield* inTenant("gamma", Effect.context<never>())
      prepareNotificationSeries(context)
      const text = yield* PrometheusMetrics.format()
      const count = (name: string, labels: ReadonlyArray<string>) => seriesRow(text, `${name}_count`, labels)
      for (const stage of notificationStages) {
        assert.match(count("connector_notification_stage_seconds", [`stage="${stage}"`, 'tenant="gamma"']) ?? "", / 0$/, stage)
      }
      assert.match(count("connector_notification_to_pbx_seconds", ['tenant="gamma"']) ?? "", / 0$/)
      assert.match(count("connector_decrypted_to_pbx_seconds", ['tenant="gamma"']) ?? "", / 0$/)
      assert.match(count("connector_webhook_response_seconds", ['until="flushed"', 'tenant="gamma"']) ?? "", / 0$/)
      assert.isDefined(seriesRow(text, "connector_notifications_received_total", ['kind="presence"', 'tenant="gamma"']))
    }))
})
