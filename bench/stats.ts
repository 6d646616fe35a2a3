/** Small measurement helpers for the benchmark: percentiles, Prometheus histogram quantiles, process memory. */
import { readdirSync, readFileSync } from "node:fs"

/** Nearest-rank percentile (p in 0..100) of unsorted samples; NaN when there are none. */
export const percentile = (samples: ReadonlyArray<number>, p: number): number => {
  if (samples.length === 0) return Number.NaN
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[Math.min(sorted.length, rank) - 1]!
}

export const round = (value: number, digits = 1): number => {
  const factor = 10 ** digits
  return Math.round(value * factor) / factor
}

/** p50 / p99 / max in milliseconds, rounded. */
export const summary = (samples: ReadonlyArray<number>) => ({
  count: samples.length,
  p50: round(percentile(samples, 50)),
  p99: round(percentile(samples, 99)),
  max: round(samples.length === 0 ? Number.NaN : samples.reduce((a, b) => Math.max(a, b), -Infinity))
})

export interface HistogramBuckets {
  /** Cumulative counts by upper bound (seconds), +Inf last. */
  readonly buckets: ReadonlyArray<{ readonly le: number; readonly count: number }>
  readonly count: number
  readonly sum: number
}

/**
 * Reads one histogram from Prometheus text exposition, each series apart: the series carrying `label` (`key="value"`),
 * if given, by the value of their `tenant` label ("" for a series without one).
 */
export const parseHistograms = (text: string, name: string, label?: string): Map<string, HistogramBuckets> => {
  const series = new Map<string, { buckets: Array<{ le: number; count: number }>; count: number; sum: number }>()
  const of = (line: string) => {
    const tenant = /tenant="([^"]*)"/.exec(line)?.[1] ?? ""
    let entry = series.get(tenant)
    if (entry === undefined) series.set(tenant, entry = { buckets: [], count: Number.NaN, sum: Number.NaN })
    return entry
  }
  const valueOf = (line: string) => Number(line.slice(line.lastIndexOf(" ") + 1))
  for (const line of text.split("\n")) {
    if (label !== undefined && !line.includes(label)) continue
    if (line.startsWith(`${name}_bucket{`)) {
      const le = /le="([^"]+)"/.exec(line)?.[1]
      if (le !== undefined) of(line).buckets.push({ le: le === "+Inf" ? Infinity : Number(le), count: valueOf(line) })
    } else if (line.startsWith(`${name}_count`)) of(line).count = valueOf(line)
    else if (line.startsWith(`${name}_sum`)) of(line).sum = valueOf(line)
  }
  const histograms = new Map<string, HistogramBuckets>()
  for (const [tenant, { buckets, count, sum }] of series) {
    if (buckets.length === 0) continue
    buckets.sort((a, b) => a.le - b.le)
    histograms.set(tenant, { buckets, count: Number.isNaN(count) ? buckets[buckets.length - 1]!.count : count, sum })
  }
  return histograms
}

/**
 * Reads one histogram from Prometheus text exposition: the series carrying `label`, if given; where the histogram has
 * several series (one per tenant), their sum — bucket by bucket, the whole process's histogram.
 */
export const parseHistogram = (text: string, name: string, label?: string): HistogramBuckets | undefined => {
  const series = [...parseHistograms(text, name, label).values()]
  if (series.length <= 1) return series[0]
  const bounds = [...new Set(series.flatMap((h) => h.buckets.map((b) => b.le)))].sort((a, b) => a - b)
  return {
    // Each series' cumulative count at a bound is its count at the highest bound of its own not above it.
    buckets: bounds.map((le) => ({
      le,
      count: series.reduce((total, h) => total + (h.buckets.findLast((b) => b.le <= le)?.count ?? 0), 0)
    })),
    count: series.reduce((total, h) => total + h.count, 0),
    sum: series.reduce((total, h) => total + h.sum, 0)
  }
}

/** The difference of two snapshots of one histogram (what happened between them). */
export const histogramDelta = (after: HistogramBuckets, before: HistogramBuckets | undefined): HistogramBuckets =>
  before === undefined ? after : {
    buckets: after.buckets.map((b) => ({ le: b.le, count: b.count - (before.buckets.find((x) => x.le === b.le)?.count ?? 0) })),
    count: after.count - before.count,
    sum: after.sum - before.sum
  }

/** Quantile estimate by linear interpolation inside the bucket, as Prometheus' histogram_quantile does (seconds). */
export const histogramQuantile = (histogram: HistogramBuckets, q: number): number => {
  const total = histogram.buckets[histogram.buckets.length - 1]?.count ?? 0
  if (total === 0) return Number.NaN
  const target = q * total
  let lowerBound = 0
  let lowerCount = 0
  for (const bucket of histogram.buckets) {
    if (bucket.count >= target) {
      if (bucket.le === Infinity) return lowerBound
      const inBucket = bucket.count - lowerCount
      return inBucket === 0 ? bucket.le : lowerBound + (bucket.le - lowerBound) * ((target - lowerCount) / inBucket)
    }
    lowerBound = bucket.le
    lowerCount = bucket.count
  }
  return lowerBound
}

/** VmRSS and VmHWM (peak) of a process in MB, from /proc (Linux). */
export const processMemory = (pid: number | "self"): { readonly rssMb: number; readonly peakRssMb: number } | undefined => {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN)
    return { rssMb: round(kb("VmRSS") / 1024), peakRssMb: round(kb("VmHWM") / 1024) }
  } catch {
    return undefined
  }
}

/**
 * CPU time of a process from /proc (Linux), in milliseconds: `all` its threads (main, decrypt workers, GC helpers, libuv
 * pool) and its `main` thread alone (the task whose id is the pid), and the kernel's part of it (`mainSystem`: system calls,
 * and on loopback the receiving side of what it sends). Clock ticks of 10 ms, so read it over seconds.
 */
export const processCpuMs = (pid: number): { readonly all: number; readonly main: number; readonly mainSystem: number } | undefined => {
  const ticks = (file: string) => {
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15 (1-based, proc(5)).
    const text = readFileSync(file, "utf8")
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
    return { all: Number(fields[11]) + Number(fields[12]), system: Number(fields[12]) }
  }
  try {
    const main = ticks(`/proc/${pid}/task/${pid}/stat`)
    return { all: ticks(`/proc/${pid}/stat`).all * TICK_MS, main: main.all * TICK_MS, mainSystem: main.system * TICK_MS }
  } catch {
    return undefined
  }
}

/** The kinds of thread in a connector, by the task names Node and V8 give them (/proc/<pid>/task/<tid>/comm). */
const threadKind = (name: string): string =>
  name === "WorkerThread" ? "workerThreads" : name.startsWith("v8:") ? "v8Profiler" : name.startsWith("V8") ? "v8Helpers"
  : name.startsWith("libuv") ? "libuvPool" : "other"

/**
 * CPU time of a process by kind of thread, in milliseconds (the `main` thread; `workerThreads`, the decryption workers;
 * `v8Helpers`, V8's background threads: concurrent marking and sweeping, compilation; `v8Profiler` with a CPU profile;
 * `libuvPool`; `other`). Threads that ended in between are not counted, so read it before and after one scenario.
 */
export const threadCpuMs = (pid: number): Record<string, number> | undefined => {
  try {
    const kinds: Record<string, number> = {}
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        const text = readFileSync(`/proc/${pid}/task/${task}/stat`, "utf8")
        const name = text.slice(text.indexOf("(") + 1, text.lastIndexOf(")"))
        const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
        const kind = task === String(pid) ? "main" : threadKind(name)
        kinds[kind] = (kinds[kind] ?? 0) + (Number(fields[11]) + Number(fields[12])) * TICK_MS
      } catch {
        // The thread ended while the tasks were read.
      }
    }
    return kinds
  } catch {
    return undefined
  }
}

/**
 * The main thread's scheduling (/proc/<pid>/task/<pid>/schedstat and status): ms on a CPU, ms runnable but waiting for
 * one, and its voluntary (it blocked) and involuntary (preempted) context switches. Over a window, wall time minus
 * both is the time it slept: idle in the event loop's poll, or blocked in a system call.
 */
export const mainThreadSched = (pid: number): { runMs: number; waitMs: number; voluntary: number; involuntary: number } | undefined => {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").trim().split(" ").map(Number)
    const status = readFileSync(`/proc/${pid}/task/${pid}/status`, "utf8")
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? Number.NaN)
    return { runMs: run! / 1e6, waitMs: wait! / 1e6, voluntary: field("voluntary_ctxt_switches"), involuntary: field("nonvoluntary_ctxt_switches") }
  } catch {
    return undefined
  }
}

/** USER_HZ is 100 on every Linux architecture Node supports (`getconf CLK_TCK`). */
const TICK_MS = 10
