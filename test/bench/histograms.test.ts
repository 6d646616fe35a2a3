import { assert, describe, it } from "@effect/vitest"
import { histogramQuantile, parseHistogram, parseHistograms } from "../../bench/stats.ts"

/** Two tenants' series of one histogram, as the process-wide /metrics shows them (effect's Prometheus exposition). */
const scrape = [
  "# TYPE connector_notification_to_pbx_seconds histogram",
  'connector_notification_to_pbx_seconds_bucket{tenant="a",le="0.1"} 90',
  'connector_notification_to_pbx_seconds_bucket{tenant="a",le="1"} 100',
  'connector_notification_to_pbx_seconds_bucket{tenant="a",le="+Inf"} 100',
  'connector_notification_to_pbx_seconds_sum{tenant="a"} 5',
  'connector_notification_to_pbx_seconds_count{tenant="a"} 100',
  'connector_notification_to_pbx_seconds_bucket{tenant="b",le="0.1"} 0',
  'connector_notification_to_pbx_seconds_bucket{tenant="b",le="1"} 100',
  'connector_notification_to_pbx_seconds_bucket{tenant="b",le="+Inf"} 100',
  'connector_notification_to_pbx_seconds_sum{tenant="b"} 60',
  'connector_notification_to_pbx_seconds_count{tenant="b"} 100',
  'connector_webhook_response_seconds_bucket{tenant="a",until="produced",le="0.001"} 7'
].join("\n")

describe("the bench's histogram reader", () => {
  it("keeps each tenant's series apart", () => {
    const series = parseHistograms(scrape, "connector_notification_to_pbx_seconds")
    assert.deepStrictEqual([...series.keys()], ["a", "b"])
    assert.strictEqual(series.get("a")!.count, 100)
    assert.strictEqual(series.get("b")!.sum, 60)
    assert.deepStrictEqual(series.get("b")!.buckets.map((b) => b.count), [0, 100, 100])
  })

  it("sums the tenants' series bucket by bucket for the whole process", () => {
    const whole = parseHistogram(scrape, "connector_notification_to_pbx_seconds")!
    assert.deepStrictEqual(whole.buckets.map((b) => [b.le, b.count]), [[0.1, 90], [1, 200], [Infinity, 200]])
    assert.strictEqual(whole.count, 200)
    assert.strictEqual(whole.sum, 65)
    // Half of all samples are at most 0.1 s only in tenant a's; the whole process's median lies in (0.1, 1].
    assert.isAbove(histogramQuantile(whole, 0.5), 0.1)
    assert.isAtMost(histogramQuantile(whole, 0.4), 0.1)
  })

  it("reads one series by its label", () => {
    const produced = parseHistogram(scrape, "connector_webhook_response_seconds", 'until="produced"')!
    assert.strictEqual(produced.count, 7)
    assert.isUndefined(parseHistogram(scrape, "connector_webhook_response_seconds", 'until="flushed"'))
  })
})
