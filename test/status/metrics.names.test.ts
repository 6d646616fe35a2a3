/**
 * The `/metrics` exposition keeps its names: every metric of src/domain/Metrics.ts, updated once, is exposed under the
 * sample names recorded in test/fixtures/metric-names.txt (taken from the exposition before it moved to effect's
 * Prometheus exporter), and docs/operations.md lists every metric family.
 */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Metric } from "effect"
import * as Metrics from "../../src/domain/Metrics.ts"
import { prometheusText } from "../../src/status/StatusRoutes.ts"

const root = join(import.meta.dirname, "../..")

/** Every sample name of an exposition, with the labels that are part of the format (le, quantile), sorted. */
export const sampleNames = (text: string): ReadonlyArray<string> =>
  [...new Set(text.split("\n").filter((line) => line !== "" && !line.startsWith("#")).map((line) => {
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)![0]
    const format = [...line.matchAll(/\b(le|quantile)="/g)].map((m) => m[1]).join(",")
    return format === "" ? name : `${name}{${format}}`
  }))].sort()

const metrics = Object.values(Metrics).filter(Metric.isMetric) as ReadonlyArray<Metric.Metric<number, unknown>>

const updateAll = Effect.gen(function*() {
  for (const metric of metrics) yield* Metric.update(Metric.withAttributes(metric, { kind: "test" }), 1)
})

/** Only the samples of Metrics.ts's metrics: the registry is the process's, where other modules register theirs too. */
const ofMetricsTs = (names: ReadonlyArray<string>) => {
  const ids = new Set(metrics.map((metric) => metric.id))
  return names.filter((name) => {
    const base = name.replace(/\{.*$/, "")
    return ids.has(base) || ids.has(base.replace(/_(bucket|count|sum)$/, ""))
  })
}

describe("metric names", () => {
  it.effect("the exposition has the recorded sample names", () =>
    Effect.gen(function*() {
      yield* updateAll
      const names = ofMetricsTs(sampleNames(yield* prometheusText))
      const recorded = readFileSync(join(root, "test/fixtures/metric-names.txt"), "utf8").split("\n").filter((line) => line !== "")
      assert.deepStrictEqual(names, recorded)
    }))

  it.effect("docs/operations.md lists every metric family", () =>
    Effect.gen(function*() {
      yield* updateAll
      // Tests that run in the same process may register metrics of their own (named test_…): those are not the product's.
      const families = [...(yield* prometheusText).matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!).filter((family) => !family.startsWith("test_"))
      assert.isAtLeast(families.length, 15)
      const docs = readFileSync(join(root, "docs/operations.md"), "utf8")
      for (const family of families) assert.include(docs, `| \`${family}\` |`, family)
    }))
})
