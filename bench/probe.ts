/**
 * Preloaded into the connector child by the benchmark (`--import`), never part of the product: samples the main
 * thread's event-loop delay and the process memory and writes them to BENCH_PROBE_FILE every 200 ms.
 * SIGUSR2 starts a new measurement window (the bench sends it before a scenario), so each scenario has its own figures.
 */
import { writeFile } from "node:fs"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { isMainThread } from "node:worker_threads"

const file = process.env["BENCH_PROBE_FILE"]
// Workers inherit `--import`; only the main thread measures (memoryUsage().rss is the whole process anyway).
if (file !== undefined && isMainThread) {
  const delay = monitorEventLoopDelay({ resolution: 5 })
  delay.enable()
  const mb = (bytes: number) => Math.round(bytes / 1e5) / 10
  let peak = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0 }
  // Written asynchronously: a synchronous write stalls the event loop it measures whenever the disk is busy.
  const write = () =>
    writeFile(file, JSON.stringify({
      eventLoopDelayMs: {
        p50: delay.percentile(50) / 1e6,
        p99: delay.percentile(99) / 1e6,
        max: delay.max / 1e6
      },
      peakMb: { rss: mb(peak.rss), heapTotal: mb(peak.heapTotal), heapUsed: mb(peak.heapUsed), externalAndBuffers: mb(peak.external) }
    }), () => {})
  const sample = () => {
    const m = process.memoryUsage()
    peak = {
      rss: Math.max(peak.rss, m.rss),
      heapTotal: Math.max(peak.heapTotal, m.heapTotal),
      heapUsed: Math.max(peak.heapUsed, m.heapUsed),
      external: Math.max(peak.external, m.external + m.arrayBuffers)
    }
  }
  // Cheap enough not to show in the figures it measures: memory every 250 ms, the file every 500 ms.
  setInterval(sample, 250).unref()
  setInterval(write, 500).unref()
  process.on("SIGUSR2", () => {
    delay.reset()
    peak = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0 }
    sample()
    write()
  })
}
