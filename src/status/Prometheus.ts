/**
 * Renders Effect metric snapshots as Prometheus text exposition (version 0.0.4). Pure, so it is tested on its own.
 */
import type { Metric } from "effect"

const escapeLabel = (value: string): string => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, "\\\"")
const metricName = (name: string): string => name.replace(/[^a-zA-Z0-9_:]/g, "_")

const labels = (attributes: Metric.Metric.AttributeSet | undefined, extra: Record<string, string> = {}): string => {
  const entries = [...Object.entries(attributes ?? {}).map(([k, v]) => [k, String(v)] as const), ...Object.entries(extra)]
  return entries.length === 0 ? "" : `{${entries.map(([k, v]) => `${metricName(k)}="${escapeLabel(v)}"`).join(",")}}`
}

const num = (value: number | bigint): string =>
  typeof value === "bigint" ? value.toString() : Number.isFinite(value) ? String(value) : value > 0 ? "+Inf" : value < 0 ? "-Inf" : "NaN"

export const renderPrometheus = (snapshots: ReadonlyArray<Metric.Metric.Snapshot>): string => {
  const byName = new Map<string, Array<Metric.Metric.Snapshot>>()
  for (const snapshot of snapshots) {
    const list = byName.get(snapshot.id)
    if (list === undefined) byName.set(snapshot.id, [snapshot])
    else list.push(snapshot)
  }
  const lines: Array<string> = []
  for (const [id, group] of [...byName].sort(([a], [b]) => a.localeCompare(b))) {
    const name = metricName(id)
    const first = group[0]!
    const type = first.type === "Counter" ? "counter" : first.type === "Gauge" ? "gauge" : first.type === "Histogram" ? "histogram" : first.type === "Summary" ? "summary" : "counter"
    if (first.description) lines.push(`# HELP ${name} ${first.description.replace(/\n/g, " ")}`)
    lines.push(`# TYPE ${name} ${type}`)
    for (const snapshot of group) {
      switch (snapshot.type) {
        case "Counter":
          lines.push(`${name}${labels(snapshot.attributes)} ${num(snapshot.state.count)}`)
          break
        case "Gauge":
          lines.push(`${name}${labels(snapshot.attributes)} ${num(snapshot.state.value)}`)
          break
        case "Histogram": {
          for (const [boundary, count] of snapshot.state.buckets) {
            lines.push(`${name}_bucket${labels(snapshot.attributes, { le: num(boundary) })} ${count}`)
          }
          lines.push(`${name}_bucket${labels(snapshot.attributes, { le: "+Inf" })} ${snapshot.state.count}`)
          lines.push(`${name}_sum${labels(snapshot.attributes)} ${num(snapshot.state.sum)}`)
          lines.push(`${name}_count${labels(snapshot.attributes)} ${snapshot.state.count}`)
          break
        }
        case "Summary": {
          for (const [quantile, value] of snapshot.state.quantiles) {
            lines.push(`${name}${labels(snapshot.attributes, { quantile: String(quantile) })} ${value === undefined ? "NaN" : num(value)}`)
          }
          lines.push(`${name}_sum${labels(snapshot.attributes)} ${num(snapshot.state.sum)}`)
          lines.push(`${name}_count${labels(snapshot.attributes)} ${snapshot.state.count}`)
          break
        }
        case "Frequency":
          for (const [key, count] of snapshot.state.occurrences) {
            lines.push(`${name}${labels(snapshot.attributes, { key })} ${count}`)
          }
          break
      }
    }
  }
  return lines.join("\n") + "\n"
}
