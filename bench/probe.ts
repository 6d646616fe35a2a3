/**
 * Preloaded into the connector child by the benchmark (`--import`), never part of the product: samples the main
 * thread's event-loop delay and the process memory and writes them to BENCH_PROBE_FILE every 200 ms.
 * SIGUSR2 starts a new measurement window (the bench sends it before a scenario), so each scenario has its own figures.
 * For the soak (bench/soak.ts): with BENCH_GC_SAMPLE_MS and `--expose-gc`, a full collection every so often and the
 * heap left after it (`heapAfterGc`); with BENCH_HEAP_SNAPSHOTS=<ms,ms,…>, heap snapshots at those times (after a
 * collection) next to the probe file. On request (the bench writes `<probe file>.live`, with `--expose-gc`): a full
 * collection and the live heap left (`liveHeap`), and with "snapshot" in the request a heap snapshot beside it.
 * Every notification POST (a path ending in /graph/notifications) is timed from Node's HTTP server handing the parsed
 * request on (its first `request` event: the public front's) to the answer finished (`notificationRequestMs`): what
 * the request waited inside the connector before its handler ran, which the handler's own histogram leaves out.
 * The TCP connections the process's servers accepted are counted too (`connections`: accepted, most open at once, and
 * how many notification POSTs came on a connection no earlier POST had used): whether the client reused connections.
 */
import { appendFile, existsSync, openSync, readdirSync, readFileSync, readSync, rename, rmSync, writeFile, writeFileSync } from "node:fs"
import { type IncomingMessage, Server, type ServerResponse } from "node:http"
import { subscribe } from "node:diagnostics_channel"
import { Session } from "node:inspector"
import { constants as perfConstants, monitorEventLoopDelay, performance, PerformanceObserver } from "node:perf_hooks"
import { GCProfiler, getHeapSpaceStatistics, getHeapStatistics, writeHeapSnapshot } from "node:v8"
import { Socket } from "node:net"
import { isMainThread } from "node:worker_threads"

// `%p` in the name is this process's id: several processes started with one environment (cluster-3's runners).
const file = process.env["BENCH_PROBE_FILE"]?.replaceAll("%p", String(process.pid))
// Workers inherit `--import`; only the main thread measures (memoryUsage().rss is the whole process anyway).
if (file !== undefined && isMainThread) {
  const delay = monitorEventLoopDelay({ resolution: 5 })
  delay.enable()
  const mb = (bytes: number) => Math.round(bytes / 1e5) / 10
  let peak = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0 }
  const heapAfterGc: Array<{ atSeconds: number; heapUsedMb: number; codeMb: number; rssMb: number; externalMb: number }> = []
  // Compiled code and what the compiler keeps with it (bytecode, feedback, trusted metadata): it grows while the JIT
  // warms up, whatever the data, so the soak looks at the heap without it too.
  const codeSpaces = new Set(["code_space", "code_large_object_space", "trusted_space", "trusted_large_object_space"])
  const codeBytes = () =>
    getHeapSpaceStatistics().filter((space) => codeSpaces.has(space.space_name)).reduce((sum, space) => sum + space.space_used_size, 0)
  const collect = (globalThis as { gc?: () => void }).gc
  // Garbage collection on the main thread over the window (V8's pauses, from perf_hooks' `gc` entries), by kind, and
  // the event loop's long turns (a 10 ms timer late by more than 100 ms): when in the window, how long, and how much
  // of each was a collection's pause.
  const gcKinds: Record<number, string> = {
    [perfConstants.NODE_PERFORMANCE_GC_MINOR]: "minor",
    [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: "major",
    [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
    [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb"
  }
  let windowStart = performance.now()
  // The heap when the window starts (MB): the old generation a scenario begins with, and what V8 lets it grow to.
  const heapNow = () => {
    const old = getHeapSpaceStatistics().find((space) => space.space_name === "old_space")
    const statistics = getHeapStatistics()
    return { heapUsed: mb(statistics.used_heap_size), heapTotal: mb(statistics.total_heap_size), oldUsed: mb(old?.space_used_size ?? 0), oldSize: mb(old?.space_size ?? 0) }
  }
  let heapAtWindowStart = heapNow()
  let gcPauses: Array<{ readonly at: number; readonly ms: number; readonly kind: string }> = []
  // What the scavenges promote over the window: the old generation's growth across each scavenge (V8's GCProfiler, its
  // figures taken every 500 ms), the bytes a later major collection has to mark and sweep.
  let promoted = { bytes: 0, scavenges: 0 }
  let gcProfiler = new GCProfiler()
  gcProfiler.start()
  const oldGeneration = (spaces: ReadonlyArray<{ readonly spaceName: string; readonly spaceUsedSize: number }>) =>
    spaces.reduce((sum, space) => (space.spaceName === "old_space" || space.spaceName === "lo_space" ? sum + space.spaceUsedSize : sum), 0)
  const takePromoted = () => {
    const statistics = gcProfiler.stop()?.statistics ?? []
    gcProfiler = new GCProfiler()
    gcProfiler.start()
    for (const gc of statistics) {
      if (gc.gcType !== "Scavenge") continue
      promoted.scavenges++
      promoted.bytes += Math.max(0, oldGeneration(gc.afterGC.heapSpaceStatistics) - oldGeneration(gc.beforeGC.heapSpaceStatistics))
    }
  }
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = gcKinds[((entry as { detail?: unknown }).detail as { kind?: number } | undefined)?.kind ?? -1] ?? "other"
      gcPauses.push({ at: entry.startTime, ms: entry.duration, kind })
    }
  }).observe({ entryTypes: ["gc"] })
  // BENCH_PROBE_TRACE=1 (cluster-3): a timeline of the window in wall-clock ms (performance.timeOrigin + now, one host's
  // clock for every process), so the bench can lay each slow change's hops beside this runner's pauses: each
  // notification POST's arrival (its path, whether forwarded by another runner, ms to its answer), each desired-presence
  // NOTIFY's arrival (its tenant, the database's `at`), each 10 ms tick late by over 4 ms (with the main thread's time on
  // a CPU and waiting for one) and the collector's pauses.
  const tracing = process.env["BENCH_PROBE_TRACE"] === "1"
  const wall = () => performance.timeOrigin + performance.now()
  let trace = { requests: [] as Array<[number, string, number, number]>, notifies: [] as Array<[number, number, string]>, late: [] as Array<[number, number, number, number]> }
  let longTurns: Array<{ readonly at: number; readonly ms: number }> = []
  let lastTick = performance.now()
  setInterval(() => {
    const now = performance.now()
    if (now - lastTick > 110) longTurns.push({ at: lastTick, ms: now - lastTick - 10 })
    lastTick = now
  }, 10).unref()
  const gcFigures = () => {
    const byKind: Record<string, { count: number; totalMs: number; maxMs: number }> = {}
    for (const pause of gcPauses) {
      const figures = byKind[pause.kind] ??= { count: 0, totalMs: 0, maxMs: 0 }
      figures.count++
      figures.totalMs += pause.ms
      figures.maxMs = Math.max(figures.maxMs, pause.ms)
    }
    for (const figures of Object.values(byKind)) {
      figures.totalMs = Math.round(figures.totalMs)
      figures.maxMs = Math.round(figures.maxMs * 10) / 10
    }
    const gcWithin = (from: number, to: number) =>
      gcPauses.reduce((sum, pause) => sum + Math.max(0, Math.min(to, pause.at + pause.ms) - Math.max(from, pause.at)), 0)
    const turns = longTurns.map((turn) => ({
      atS: Math.round((turn.at - windowStart) / 100) / 10,
      ms: Math.round(turn.ms),
      gcMs: Math.round(gcWithin(turn.at, turn.at + turn.ms + 10))
    }))
    // Every pause that is not a scavenge (mark-compact and its incremental steps), and the scavenges over 10 ms: when
    // in the window (s) and how long (ms), to see whether a major collection lands in a scenario's tail.
    const notable = gcPauses.filter((pause) => pause.kind !== "minor" || pause.ms > 10).map((pause) => ({
      atS: Math.round((pause.at - windowStart) / 100) / 10,
      ms: Math.round(pause.ms * 10) / 10,
      kind: pause.kind
    }))
    const seconds = (performance.now() - windowStart) / 1000
    return {
      byKind,
      promoted: { mb: mb(promoted.bytes), mbPerS: Math.round(promoted.bytes / 1e5 / Math.max(seconds, 0.1)) / 10, scavenges: promoted.scavenges },
      notable: notable.slice(0, 40),
      heapAtWindowStart,
      longTurns: { count: turns.length, totalMs: turns.reduce((sum, turn) => sum + turn.ms, 0), gcMs: turns.reduce((sum, turn) => sum + turn.gcMs, 0), longest: [...turns].sort((a, b) => b.ms - a.ms).slice(0, 12) }
    }
  }
  // The webhook's answer times, in a typed array sorted natively for the figures every 500 ms: a comparator over a
  // plain array of 10,000 doubles boxed each pair it compared (≈ 18 MB allocated per 15 s of burst in the connector).
  let requests = new Float64Array(4096)
  let requestCount = 0
  const pushRequest = (ms: number) => {
    if (requestCount === requests.length) {
      const larger = new Float64Array(requests.length * 2)
      larger.set(requests)
      requests = larger
    }
    requests[requestCount++] = ms
  }
  const seen = new WeakSet<IncomingMessage>()
  const usedSockets = new WeakSet<object>()
  let connections = { accepted: 0, open: 0, mostOpen: 0, postsOnNewConnection: 0 }
  const emit = Server.prototype.emit
  // Forwards `arguments` as they are: a rest parameter and a spread made two arrays on every event of the server (each
  // request's among them), allocation of the bench's own in the connector it measures.
  Server.prototype.emit = function(this: Server, event: string | symbol, socket?: unknown) {
    if (event === "connection") {
      connections.accepted++
      connections.open++
      connections.mostOpen = Math.max(connections.mostOpen, connections.open)
      ;(socket as { once(event: "close", listener: () => void): void }).once("close", () => connections.open--)
    }
    return emit.apply(this, arguments as unknown as Parameters<typeof emit>)
  } as typeof Server.prototype.emit
  // Requests as Node's parser hands them to a server (the public port's, before the front or the connector's own
  // Node-level handlers take them): the channel sees every request once, however it is served afterwards.
  subscribe("http.server.request.start", (message) => {
    const { request: req, response: res } = message as { request: IncomingMessage; response: ServerResponse }
    if (!seen.has(req) && req.method === "POST" && (req.url ?? "").split("?")[0]!.endsWith("/graph/notifications")) {
      seen.add(req)
      if (!usedSockets.has(req.socket)) {
        usedSockets.add(req.socket)
        connections.postsOnNewConnection++
      }
      const at = performance.now()
      const entry: [number, string, number, number] | undefined = tracing
        ? [performance.timeOrigin + at, (req.url ?? "").split("?")[0]!, req.headers["x-connector-forwarded"] === undefined ? 0 : 1, -1]
        : undefined
      if (entry !== undefined) trace.requests.push(entry)
      res.once("finish", () => {
        pushRequest(performance.now() - at)
        if (entry !== undefined) entry[3] = Math.round((performance.now() - at) * 10) / 10
      })
    }
  })
  // A cluster runner (CONNECTOR_DATABASE_URL): how late its PostgreSQL connections' bytes carrying a desired-presence
  // NOTIFY (with the database's `at`) reach the socket's 'data' event, to tell the kernel and PostgreSQL from the
  // process's own scheduling in the cluster's `notify` stage.
  const pgPort = (() => {
    try {
      const url = process.env["CONNECTOR_DATABASE_URL"]
      return url === undefined ? undefined : Number(new URL(url).port || "5432")
    } catch {
      return undefined
    }
  })()
  let notifyLags: Array<number> = []
  if (pgPort !== undefined) {
    const socketEmit = Socket.prototype.emit
    Socket.prototype.emit = function(this: Socket, event: string | symbol, ...args: Array<unknown>) {
      if (event === "data" && this.remotePort === pgPort && Buffer.isBuffer(args[0])) {
        const now = Date.now()
        const text = args[0].toString("latin1")
        for (const match of text.matchAll(/"at" : ([0-9.]+)/g)) notifyLags.push(now - Number(match[1]))
        if (tracing) {
          const arrived = wall()
          for (const match of text.matchAll(/"tenant" : "([^"]*)"[^}]*?"at" : ([0-9.]+)/g)) trace.notifies.push([arrived, Number(match[2]), match[1]!])
        }
      }
      return Reflect.apply(socketEmit, this, [event, ...args]) as boolean
    } as typeof Socket.prototype.emit
  }
  const lagFigures = () => {
    const sorted = [...notifyLags].sort((a, b) => a - b)
    const at = (q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! * 10) / 10
    return { count: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) }
  }
  const requestFigures = () => {
    if (requestCount === 0) return undefined
    const sorted = requests.slice(0, requestCount).sort()
    const at = (q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! * 10) / 10
    return { count: sorted.length, p50: at(0.5), p99: at(0.99), max: at(1) }
  }
  // Stalls: a 10 ms timer that fires late by more than 50 ms marks a turn of the event loop that held the thread that
  // long (the delay histogram counts a stall once, however long, so its p99 hides them); with the garbage collector's
  // pauses in the same window, to tell collection from work.
  let stalls: Array<number> = []
  // Milliseconds stalled in each second of the window (its first 30).
  let stalledBySecond: Array<number> = Array.from({ length: 30 }, () => 0)
  let runBySecond: Array<number> = Array.from({ length: 30 }, () => 0)
  let waitBySecond: Array<number> = Array.from({ length: 30 }, () => 0)
  // Each stall's main thread as the kernel saw it (/proc/…/schedstat: ns on a CPU, ns runnable but waiting for one),
  // to tell a turn that worked that long from a process that waited for a core (a busy machine) or slept.
  const schedstat = `/proc/${process.pid}/task/${process.pid}/schedstat`
  // Opened once and read from its start every 10 ms (one pread instead of an open, a read and a close).
  let schedFd: number | undefined
  const schedBuffer = Buffer.alloc(128)
  const sched = (): [number, number] => {
    try {
      schedFd ??= openSync(schedstat, "r")
      const [run, wait] = schedBuffer.toString("latin1", 0, readSync(schedFd, schedBuffer, 0, schedBuffer.length, 0)).split(" ").map(Number)
      return [run! / 1e6, wait! / 1e6]
    } catch {
      return [Number.NaN, Number.NaN]
    }
  }
  let stallDetail: Array<{ readonly at: number; readonly ms: number; readonly onCpuMs: number; readonly waitingForCpuMs: number }> = []
  let tickAt = performance.now()
  let tickSched = sched()
  setInterval(() => {
    const now = performance.now()
    const nowSched = sched()
    const late = now - tickAt - 10
    if (tracing && late > 4) trace.late.push([performance.timeOrigin + tickAt, Math.round(late * 10) / 10, Math.round((nowSched[0] - tickSched[0]) * 10) / 10, Math.round((nowSched[1] - tickSched[1]) * 10) / 10])
    if (late > 50) {
      stalls.push(late)
      stallDetail.push({ at: tickAt, ms: late, onCpuMs: nowSched[0] - tickSched[0], waitingForCpuMs: nowSched[1] - tickSched[1] })
      const second = Math.floor((now - windowStart) / 1000)
      if (second < stalledBySecond.length) stalledBySecond[second]! += Math.round(late)
    }
    // The main thread on a CPU and waiting for one, per second of the window: a second whose work costs more (cold code)
    // reads apart from one that waited (a busy machine).
    const second = Math.floor((now - windowStart) / 1000)
    if (second >= 0 && second < runBySecond.length) {
      runBySecond[second]! += nowSched[0] - tickSched[0]
      waitBySecond[second]! += nowSched[1] - tickSched[1]
    }
    tickAt = now
    tickSched = nowSched
  }, 10).unref()
  const stallFigures = () => {
    const window = performance.now() - windowStart
    const sum = (values: Array<number>) => values.reduce((a, b) => a + b, 0)
    const pauses = gcPauses.map((pause) => pause.ms)
    const long = pauses.filter((d) => d > 20)
    return {
      windowMs: Math.round(window),
      over50ms: stalls.length,
      stalledShare: Math.round((sum(stalls) / window) * 1000) / 1000,
      longest: Math.round(Math.max(0, ...stalls)),
      stalledBySecond,
      mainThreadBySecond: { runMs: runBySecond.map(Math.round), waitingForCpuMs: waitBySecond.map(Math.round) },
      // When each major collection started (s into the window), to set against the slowest changes' seconds.
      majorGcAtS: gcPauses.filter((pause) => pause.kind === "major").map((pause) => Math.round((pause.at - windowStart) / 100) / 10),
      gc: { pauses: pauses.length, totalMs: Math.round(sum(pauses)), over20ms: long.length, longest: Math.round(Math.max(0, ...pauses)) },
      // The longest stalls: when (s into the window), how long, the main thread on a CPU / waiting for one in it, and
      // the collector's pauses in it (ms).
      longestStalls: [...stallDetail].sort((a, b) => b.ms - a.ms).slice(0, 8).map((stall) => ({
        atS: Math.round((stall.at - windowStart) / 100) / 10,
        ms: Math.round(stall.ms),
        onCpuMs: Math.round(stall.onCpuMs),
        waitingForCpuMs: Math.round(stall.waitingForCpuMs),
        gcMs: Math.round(gcPauses.reduce((total, pause) => total + Math.max(0, Math.min(stall.at + stall.ms + 10, pause.at + pause.ms) - Math.max(stall.at, pause.at)), 0))
      }))
    }
  }
  // Written asynchronously: a synchronous write stalls the event loop it measures whenever the disk is busy. Beside the
  // file, then renamed over it, so a reader never finds it half written.
  const write = () => {
    writeFile(`${file}.tmp`, JSON.stringify({
      eventLoopDelayMs: {
        p50: delay.percentile(50) / 1e6,
        p99: delay.percentile(99) / 1e6,
        max: delay.max / 1e6
      },
      peakMb: { rss: mb(peak.rss), heapTotal: mb(peak.heapTotal), heapUsed: mb(peak.heapUsed), externalAndBuffers: mb(peak.external) },
      heapLimitMb: mb(getHeapStatistics().heap_size_limit),
      heapAfterGc,
      ...(liveHeap === undefined ? {} : { liveHeap }),
      ...(requestCount === 0 ? {} : { notificationRequestMs: requestFigures() }),
      ...(notifyLags.length === 0 ? {} : { pgNotifyDataLagMs: lagFigures() }),
      connections,
      gc: gcFigures(),
      stalls: stallFigures(),
      ...(tracing ? { trace: { ...trace, gc: gcPauses.map((pause) => [Math.round((performance.timeOrigin + pause.at) * 10) / 10, Math.round(pause.ms * 10) / 10, pause.kind]) } } : {})
    }), (error) => {
      if (error === null) {
        // Asynchronous too: a synchronous rename held the connector's event loop ≈ 3 ms at a time on a busy disk
        // (docs/performance.md, "Fifth round: the main thread's per-change path"). Removed meanwhile: the bench ends.
        rename(`${file}.tmp`, file, () => {})
      }
    })
  }
  let liveHeap: { readonly heapUsedMb: number; readonly codeMb: number; readonly rssMb: number; readonly snapshot?: string } | undefined
  const request = `${file}.live`
  const answerRequest = () => {
    if (!existsSync(request) || collect === undefined) return
    const wanted = readFileSync(request, "utf8")
    rmSync(request, { force: true })
    collect()
    collect()
    const m = process.memoryUsage()
    const snapshot = wanted.includes("snapshot") ? writeHeapSnapshot(`${file}.heapsnapshot`) : undefined
    liveHeap = { heapUsedMb: mb(m.heapUsed), codeMb: mb(codeBytes()), rssMb: mb(m.rss), ...(snapshot === undefined ? {} : { snapshot }) }
  }
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
  // BENCH_MEMORY_TIMELINE=<ms>: one JSON line per sample in <probe file>.timeline.jsonl — the process's memory split
  // into V8's spaces, buffers outside them and the kernel's view (anonymous / file-backed resident, threads), to see
  // what makes a start-up's peak.
  const timelineEvery = Number(process.env["BENCH_MEMORY_TIMELINE"] ?? 0)
  if (timelineEvery > 0) {
    const kernel = (): Record<string, number> => {
      const fields: Record<string, number> = {}
      for (const line of readFileSync("/proc/self/status", "utf8").split("\n")) {
        const match = /^(VmRSS|VmHWM|RssAnon|RssFile|Threads):\s+(\d+)/.exec(line)
        if (match !== null) fields[match[1]!] = match[1] === "Threads" ? Number(match[2]) : Math.round(Number(match[2]) / 102.4) / 10
      }
      return fields
    }
    setInterval(() => {
      const m = process.memoryUsage()
      const spaces: Record<string, [number, number]> = {}
      for (const space of getHeapSpaceStatistics()) {
        if (space.space_size > 0) spaces[space.space_name.replace(/_space$/, "")] = [mb(space.space_size), mb(space.space_used_size)]
      }
      const proc = kernel()
      const line = {
        t: Math.round(performance.now()) / 1000,
        rss: mb(m.rss),
        heapTotal: mb(m.heapTotal),
        heapUsed: mb(m.heapUsed),
        external: mb(m.external),
        arrayBuffers: mb(m.arrayBuffers),
        ...proc,
        spaces
      }
      appendFile(`${file}.timeline.jsonl`, `${JSON.stringify(line)}\n`, () => {})
      // The mappings themselves at each new peak above 400 MB (every 25 MB more), with the threads' names.
      const rss = proc["VmRSS"] ?? 0
      if (rss > 400 && rss > smapsAt + 25) {
        smapsAt = rss
        writeFileSync(`${file}.smaps.${Math.round(rss)}`, readFileSync("/proc/self/smaps", "utf8"))
        const threads = readdirSync("/proc/self/task").map((task) => readFileSync(`/proc/self/task/${task}/comm`, "utf8").trim())
        writeFileSync(`${file}.threads`, threads.join("\n"))
      }
    }, timelineEvery).unref()
  }
  let smapsAt = 0
  // BENCH_ALLOCATION_PROFILE=<s>: V8's sampling heap profiler over the first <s> seconds, counting what was allocated
  // (collected or not), written to <probe file>.heapprofile (open it in a browser's developer tools).
  const allocationSeconds = Number(process.env["BENCH_ALLOCATION_PROFILE"] ?? 0)
  if (allocationSeconds > 0) {
    const session = new Session()
    session.connect()
    session.post("HeapProfiler.startSampling", {
      samplingInterval: 65536,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true
    })
    setTimeout(() => {
      session.post("HeapProfiler.stopSampling", (error, result) => {
        if (error === null) writeFileSync(`${file}.heapprofile`, JSON.stringify(result.profile))
        session.disconnect()
      })
    }, allocationSeconds * 1000).unref()
  }
  // BENCH_ALLOCATION_PROFILE_WINDOW=<s>: the same profiler over the first <s> seconds after the window's start (SIGUSR2,
  // e.g. a burst), written to <probe file>.window.heapprofile: what the scenario allocates, without the start-up.
  const windowAllocationSeconds = Number(process.env["BENCH_ALLOCATION_PROFILE_WINDOW"] ?? 0)
  // BENCH_ALLOCATION_PROFILE_DELAY=<s>: the window's profile starts that long after the window (past a burst's first seconds).
  const windowAllocationDelay = Number(process.env["BENCH_ALLOCATION_PROFILE_DELAY"] ?? 0)
  const profileWindow = () => {
    const inspector = new Session()
    inspector.connect()
    // BENCH_ALLOCATION_PROFILE_PROMOTED=1: leave out what a scavenge collected, so that the profile holds what was
    // promoted to the old generation (and what the next full collection had to mark and sweep) by where it was made.
    const promotedOnly = process.env["BENCH_ALLOCATION_PROFILE_PROMOTED"] === "1"
    inspector.post("HeapProfiler.startSampling", { samplingInterval: promotedOnly ? 16384 : 65536, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: !promotedOnly })
    setTimeout(() => {
      inspector.post("HeapProfiler.stopSampling", (error, result) => {
        if (error === null) writeFileSync(`${file}.window.heapprofile`, JSON.stringify(result.profile))
        inspector.disconnect()
      })
    }, windowAllocationSeconds * 1000).unref()
  }
  setInterval(() => {
    answerRequest()
    takePromoted()
    write()
  }, 500).unref()
  const every = Number(process.env["BENCH_GC_SAMPLE_MS"] ?? 0)
  if (every > 0 && collect !== undefined) {
    setInterval(() => {
      collect()
      const m = process.memoryUsage()
      heapAfterGc.push({
        atSeconds: Math.round(performance.now() / 100) / 10,
        heapUsedMb: mb(m.heapUsed),
        codeMb: mb(codeBytes()),
        rssMb: mb(m.rss),
        externalMb: mb(m.external)
      })
    }, every).unref()
  }
  for (const at of (process.env["BENCH_HEAP_SNAPSHOTS"] ?? "").split(",").filter((t) => t !== "").map(Number)) {
    setTimeout(() => {
      collect?.()
      writeHeapSnapshot(`${file}.${Math.round(at / 1000)}s.heapsnapshot`)
    }, at).unref()
  }
  process.on("SIGUSR2", () => {
    if (windowAllocationSeconds > 0) setTimeout(profileWindow, windowAllocationDelay * 1000).unref()
    delay.reset()
    windowStart = performance.now()
    heapAtWindowStart = heapNow()
    gcPauses = []
    takePromoted()
    promoted = { bytes: 0, scavenges: 0 }
    longTurns = []
    trace = { requests: [], notifies: [], late: [] }
    notifyLags = []
    requestCount = 0
    stalls = []
    stallDetail = []
    stalledBySecond = stalledBySecond.map(() => 0)
    runBySecond = runBySecond.map(() => 0)
    waitBySecond = waitBySecond.map(() => 0)
    connections = { accepted: 0, open: connections.open, mostOpen: connections.open, postsOnNewConnection: 0 }
    peak = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0 }
    sample()
    write()
  })
}
