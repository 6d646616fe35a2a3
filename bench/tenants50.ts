/**
 * `npm run bench -- tenants-50` (docs/performance.md, docs/scaling.md "Memory per tenant"): BENCH_TENANTS (50) tenants
 * of BENCH_TENANT_USERS (200) users each in one connector process (`run` without a cluster, the files state store):
 * tenant `default` from the configuration file, the others stored tenants. Each tenant has its own Graph simulator and
 * PBX system (master + slave), with people of its own (their PBX guids differ between tenants, so every SetPresence is
 * known to be one tenant's). It prints one JSON line with:
 *   startup   from the connector's spawn until every tenant's status page (through the public port) is all green;
 *   memory    VmRSS once green and settled, VmHWM, the process's threads, and the heap (the probe's live heap after a
 *             full collection, and its peaks);
 *   burst     every user of every tenant changes once, interleaved over the tenants at BENCH_BURST_RATE (500/s, so
 *             10,000 changes in 20 s): the added latency, from the Graph simulator's notification POST to the
 *             SetPresence applied at that tenant's PBX (as rich-burst-10k measures it), and from the simulator's
 *             setPresence call, with how many arrived; the connector's own histograms, the whole process's (every
 *             tenant's series summed) and the slowest tenant's.
 * Before the burst the simulators warm alone (bench/simWarmup.ts, BENCH_SIM_WARMUP, 2,000 changes by default): their
 * notifications built, encrypted, signed and POSTed as in the burst, to a sink in the bench instead of the connector,
 * whose first notification stays the burst's first; `warmup` in the output says which warm-up ran.
 * The simulators run in BENCH_SIM_THREADS (4) worker threads (bench/tenantSims.ts), each hosting a share of the tenants
 * and measuring their burst itself: with 50 tenants nearly every change is a POST of its own (one validation token
 * signed and one item encrypted each), where rich-burst-10k's one tenant sends ≈ 33 items per POST, and 100 simulators
 * on the bench's one event loop queued the POSTs and the SetPresence for seconds — a latency of the bench, not of the
 * connector. Each thread reports its event-loop delay, so that a bench that falls behind shows. Graph's rule for slow
 * endpoints and its 3-second answer timeout are off here (bench/tenantSims.ts); POSTs answered after 3 s are counted.
 * The bench's own CPU over the burst is reported per change (`benchPerChangeUs`: the whole process, its simulator
 * threads, by kind of thread), since it shares the machine's cores with the connector; BENCH_SIM_PROFILE=<dir> leaves a
 * CPU profile of each simulator thread over the burst there (read it with bench/profileTop.ts). The simulator threads
 * run at nice 10 (BENCH_SIM_NICE, report.ts `simulatorNice`; 0: the connector's priority): the systems they stand for
 * never take the connector's cores, and each thread reports the nice value it ran at.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { Worker } from "node:worker_threads"
import { Context, Effect, Layer, Schema } from "effect"
import { freePort } from "../src/http/Server.ts"
import { stateStoreLayer } from "../src/state/StateSettings.ts"
import { StateStore, TenantConfig, TenantId } from "../src/state/StateStore.ts"
import { startConnector, writeConfig } from "./connectorProcess.ts"
import { watchListenQueue } from "./listenQueue.ts"
import { emit, progress, seconds, simulatorNice, TARGETS as ONE_TENANT, until } from "./report.ts"
import { histogramDelta, histogramQuantile, type HistogramBuckets, parseHistogram, parseHistograms, mainThreadSched, percentile, processCpuMs, round, summary, threadCpuMs } from "./stats.ts"
import { SIM_WARMUP_CHANGES } from "./simWarmup.ts"
import { epochNow, type FromWorker, type SimWorkerData, type SimWorkerResult, type ToWorker } from "./tenantSims.ts"

const TENANTS = Number(process.env["BENCH_TENANTS"] ?? 50)
const USERS = Number(process.env["BENCH_TENANT_USERS"] ?? 200)
const BURST_RATE = Number(process.env["BENCH_BURST_RATE"] ?? 500)
const STARTUP_SECONDS = Number(process.env["BENCH_TENANTS_STARTUP_SECONDS"] ?? 300)
/** BENCH_TENANTS_STARTUP_ONLY=1: only the start-up (until every tenant is green), then stop: many start-ups in a row. */
const STARTUP_ONLY = process.env["BENCH_TENANTS_STARTUP_ONLY"] !== undefined
/** How many worker threads host the simulators (the tenants dealt out in turn). */
/**
 * Samples the CPU of each kind of thread of each process (bench/stats.ts `threadCpuMs`) once a second until `stop`, which
 * gives, per process and kind, the ms used in each second: which threads take the cores when.
 */
const threadsBySecond = (pids: ReadonlyArray<number>) => {
  const samples: Array<ReadonlyArray<Record<string, number> | undefined>> = [pids.map(threadCpuMs)]
  const timer = setInterval(() => samples.push(pids.map(threadCpuMs)), 1000)
  return {
    stop: (): Array<Record<string, Array<number>>> => {
      clearInterval(timer)
      return pids.map((_, p) => {
        const byKind: Record<string, Array<number>> = {}
        for (let i = 1; i < samples.length; i++) {
          const before = samples[i - 1]![p] ?? {}
          for (const [kind, ms] of Object.entries(samples[i]![p] ?? {})) (byKind[kind] ??= []).push(Math.round(ms - (before[kind] ?? 0)))
        }
        return byKind
      })
    }
  }
}

/** Counts, per second of the burst (by when the POST started), the changes among the slowest 1 % of `added`. */
const slowestBySecond = (added: ReadonlyArray<number>, postedMs: ReadonlyArray<number>): Array<number> => {
  const threshold = [...added].sort((a, b) => a - b)[Math.floor(added.length * 0.99)] ?? Infinity
  const counts: Array<number> = []
  for (let i = 0; i < added.length; i++) {
    if (added[i]! < threshold) continue
    const second = Math.max(0, Math.floor(postedMs[i]! / 1000))
    while (counts.length <= second) counts.push(0)
    counts[second]!++
  }
  return counts
}

const SIM_THREADS = Math.max(1, Math.min(TENANTS, Number(process.env["BENCH_SIM_THREADS"] ?? 4)))
/** BENCH_SIM_PROFILE=<dir>: each simulator thread writes a CPU profile of the burst there (sim-thread-<id>.cpuprofile). */
const SIM_PROFILE_DIR = process.env["BENCH_SIM_PROFILE"] || undefined
/** BENCH_SIM_NICE=<0..19>: the simulator threads' nice value (10 unless given, report.ts `simulatorNice`; tenantSims.ts). */
const SIM_NICE = simulatorNice(process.env["BENCH_SIM_NICE"])
/** Seconds with no change between the live heap and the burst: the connector's CPU at rest with every tenant running. */
const IDLE_SECONDS = 5
const ADMIN_PASSWORD = "bench-tenants-admin-password"
const PBX_PASSWORD = "bench-tenants-app-password"
/**
 * The issue's targets for tenants-50. The burst's added latency p99 has "the target as for one tenant": the one-tenant
 * scenarios' target (bench/report.ts, addedLatencyP99Ms), held against the same measure.
 */
const TARGETS = { allGreenSeconds: 30, rssMb: 400, addedLatencyP99Ms: ONE_TENANT.addedLatencyP99Ms }

/** The connector's own histograms, from the process-wide /metrics (every tenant's series, with its `tenant` label). */
const HISTOGRAMS = {
  toPbx: ["connector_notification_to_pbx_seconds", undefined],
  // The stages of a rich item (src/graph/notifications/Stages.ts), per chunk, then published → PBX confirmed.
  stageIntake: ["connector_notification_stage_seconds", 'stage="intake"'],
  stageHeld: ["connector_notification_stage_seconds", 'stage="held"'],
  stageDecrypt: ["connector_notification_stage_seconds", 'stage="decrypt"'],
  stagePublish: ["connector_notification_stage_seconds", 'stage="publish"'],
  decryptedToPbx: ["connector_decrypted_to_pbx_seconds", undefined],
  webhook: ["connector_webhook_response_seconds", 'until="produced"'],
  flushed: ["connector_webhook_response_seconds", 'until="flushed"']
} as const
const metricsText = (port: number) => Effect.promise(() => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()).catch(() => ""))
const quantilesOf = (delta: HistogramBuckets) => ({
  count: delta.count,
  meanMs: delta.count > 0 ? round((delta.sum / delta.count) * 1000) : Number.NaN,
  p50: round(histogramQuantile(delta, 0.5) * 1000),
  p99: round(histogramQuantile(delta, 0.99) * 1000)
})
/** A counter's value summed over its series (every tenant's) in a /metrics text. */
const counterSum = (text: string, name: string): number =>
  text.split("\n").filter((line) => line.startsWith(name)).reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0)
/** Between two scrapes: the whole process's quantiles (ms), and the tenant whose own p99 was highest. */
const connectorSide = (after: string, before: string) =>
  Object.fromEntries(Object.entries(HISTOGRAMS).map(([key, [name, label]]) => {
    const whole = parseHistogram(after, name, label)
    const perTenant = [...parseHistograms(after, name, label)].map(([tenant, histogram]) => ({
      tenant,
      ...quantilesOf(histogramDelta(histogram, parseHistograms(before, name, label).get(tenant)))
    })).filter((t) => t.count > 0)
    const slowest = perTenant.reduce<(typeof perTenant)[number] | undefined>((worst, t) => worst === undefined || t.p99 > worst.p99 ? t : worst, undefined)
    return [key, whole === undefined ? undefined : { ...quantilesOf(histogramDelta(whole, parseHistogram(before, name, label))), slowestTenant: slowest }]
  }))

/** The simulator threads: each hosts every SIM_THREADS-th tenant; resolves once all their simulators run. */
const startSimThreads = (port: number, ids: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      Promise.all(Array.from({ length: SIM_THREADS }, (_, n) => {
        const data: SimWorkerData = {
          port,
          tenants: ids.flatMap((id, index) => index % SIM_THREADS === n ? [{ id, index }] : []),
          tenantCount: ids.length,
          users: USERS,
          pbxPassword: PBX_PASSWORD,
          profileDir: SIM_PROFILE_DIR,
          nice: SIM_NICE
        }
        const worker = new Worker(new URL("./tenantSims.ts", import.meta.url), { workerData: data })
        return new Promise<{ worker: Worker; ready: Extract<FromWorker, { type: "ready" }> }>((resolve, reject) => {
          worker.once("error", reject)
          worker.once("message", (message: FromWorker) => message.type === "ready" ? resolve({ worker, ready: message }) : reject(new Error(message.type)))
        })
      }))
    ),
    (threads) =>
      Effect.promise(() =>
        Promise.all(threads.map(({ worker }) =>
          new Promise<void>((resolve) => {
            worker.once("exit", () => resolve())
            worker.postMessage({ type: "stop" } satisfies ToWorker)
            setTimeout(() => void worker.terminate(), 10_000).unref()
          })
        ))
      )
  )

/** Sends `message` to every simulator thread and waits for each one's `answer` (anything else, or an error, fails). */
const askEach = <T extends FromWorker["type"]>(threads: ReadonlyArray<{ worker: Worker }>, message: ToWorker, answer: T) =>
  Effect.promise(() =>
    Promise.all(threads.map(({ worker }) =>
      new Promise<Extract<FromWorker, { type: T }>>((resolve, reject) => {
        worker.once("error", reject)
        worker.once("message", (m: FromWorker) => m.type === answer ? resolve(m as Extract<FromWorker, { type: T }>) : reject(new Error(m.type)))
        worker.postMessage(message)
      })
    ))
  )

/**
 * BENCH_SIM_WARMUP (bench/simWarmup.ts, default 2,000 changes): the simulator threads alone warmed before the burst,
 * their notifications POSTed to a sink in their thread instead of the connector; per tenant an even share.
 */
const runSimWarmup = (threads: ReadonlyArray<{ worker: Worker }>) =>
  askEach(threads, { type: "simWarmup", changesPerTenant: Math.floor(SIM_WARMUP_CHANGES / TENANTS), rate: BURST_RATE }, "simWarmed").pipe(
    Effect.map((answers) => answers.map((a) => a.report)),
    Effect.map((reports) => ({
      changes: reports.reduce((n, r) => n + r.changes, 0),
      sinkPosts: reports.reduce((n, r) => n + r.sinkPosts, 0),
      sinkItems: reports.reduce((n, r) => n + r.sinkItems, 0),
      threadCpuMsByHalf: [0, 1].map((half) => reports.reduce((n, r) => n + (r.threadCpuMsByHalf[half] ?? 0), 0)),
      seconds: Math.max(...reports.map((r) => r.seconds))
    }))
  )

/** BENCH_WARMUP=<users per tenant>: changed to Away before the burst (a diagnosis of the burst's first seconds). */
const WARMUP = Number(process.env["BENCH_WARMUP"] ?? 0)
const runWarmup = (threads: ReadonlyArray<{ worker: Worker }>) =>
  askEach(threads, { type: "warmup", changes: WARMUP, rate: BURST_RATE }, "warmed")

/** Sends the burst to every thread (one common start) and collects their results. */
const runBurst = (threads: ReadonlyArray<{ worker: Worker }>, startAt: number) =>
  askEach(threads, { type: "burst", startAt, rate: BURST_RATE }, "result").pipe(Effect.map((answers) => answers.map((a) => a.result)))

/**
 * The kernel's count of connections refused because a listen queue was full (ListenOverflows, /proc/net/netstat): the
 * whole machine's, so a difference over the burst is an upper bound for the connector's port. A dropped SYN is sent
 * again after 1, 3, 7, 15 … s, which the POST's answer time then includes.
 */
const listenOverflows = (): number => {
  try {
    const lines = readFileSync("/proc/net/netstat", "utf8").split("\n")
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const names = lines[i]!.split(" ")
      const at = names.indexOf("ListenOverflows")
      if (at >= 0) return Number(lines[i + 1]!.split(" ")[at])
    }
  } catch {
    // Not Linux: no figure.
  }
  return Number.NaN
}

const Lights = Schema.Struct({ lights: Schema.Record(Schema.String, Schema.Struct({ state: Schema.String })) })

const threadsOf = (pid: number): number => {
  try {
    return Number(/^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? Number.NaN)
  } catch {
    return Number.NaN
  }
}

export const tenants50 = (repoRoot: string, nodeFlags: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const dir = mkdtempSync(join(tmpdir(), "presence-bench-tenants-"))
    const port = yield* freePort()
    const ids = ["default", ...Array.from({ length: TENANTS - 1 }, (_, i) => `t${String(i + 1).padStart(2, "0")}`)]
    const loadAtStart = round(loadavg()[0]!, 2)
    // The simulators, PBXs included, run before the connector does (they connect again each second until it listens).
    const sims = yield* startSimThreads(port, ids)
    const configOf = new Map(sims.flatMap(({ ready }) => ready.tenants.map((t) => [t.id, t.config] as const)))
    const tenants = ids.map((id) => ({ id, prefix: id === "default" ? "" : `/t/${id}`, config: configOf.get(id)! }))

    // The stored tenants, written before the connector starts (the store is closed again: the connector opens it).
    const dataDir = join(dir, "data")
    yield* Effect.scoped(Effect.gen(function*() {
      const store = Context.get(yield* Layer.build(stateStoreLayer({ dataDir })), StateStore)
      for (const t of tenants.slice(1)) yield* store.tenants.put(TenantId.make(t.id), yield* Schema.decodeUnknownEffect(TenantConfig)(t.config))
    }))
    const defaultConfig = tenants[0]!.config as { readonly notifications?: object }
    const configFile = writeConfig(dir, {
      ...defaultConfig,
      // BENCH_WORKER_NICE: notifications.decryptWorkerNice of the process's shared decrypt workers (as in bench/run.ts).
      ...(process.env["BENCH_WORKER_NICE"] ? { notifications: { ...defaultConfig.notifications, decryptWorkerNice: Number(process.env["BENCH_WORKER_NICE"]) } } : {}),
      http: { host: "127.0.0.1", port },
      dataDir,
      admin: { password: ADMIN_PASSWORD },
      log: { level: "info", format: "json" }
    })
    yield* progress(`tenants-${TENANTS}: ${TENANTS} tenants × ${USERS} users, simulators in ${SIM_THREADS} threads; connector on port ${port}; files in ${dir}; load ${loadAtStart}`)

    const connector = yield* Effect.acquireRelease(
      // --expose-gc: the probe's live heap after a full collection (what the tenants hold).
      Effect.sync(() =>
        startConnector({
          repoRoot,
          configFile,
          port,
          logFile: join(dir, "connector.log"),
          nodeFlags: [...nodeFlags, "--expose-gc"],
          // BENCH_PROFILE=1 (with BENCH_KEEP=1) leaves .cpuprofile files of the connector in the bench directory.
          cpuProfileDir: process.env["BENCH_PROFILE"] === undefined ? undefined : join(dir, "profiles"),
          // A profile is written only on a clean exit, and 50 tenants take longer to stop than the usual 15 s allow.
          killAfterMillis: process.env["BENCH_PROFILE"] === undefined ? undefined : 120_000
        })
      ),
      (child) => {
        // A connector that exited by itself keeps its directory (its log says why), as BENCH_KEEP=1 keeps every one.
        const exitedByItself = child.exited()
        return Effect.promise(() => child.stop()).pipe(Effect.andThen(Effect.sync(() => {
          if (exitedByItself) process.stderr.write(`[bench] the connector exited by itself: its files are kept in ${dir}\n`)
          else if (process.env["BENCH_KEEP"] === undefined) rmSync(dir, { recursive: true, force: true })
        })))
      }
    )

    const auth = "Basic " + Buffer.from(`admin:${ADMIN_PASSWORD}`).toString("base64")
    const green = async (prefix: string) => {
      const response = await fetch(`http://127.0.0.1:${port}${prefix}/api/status`, { headers: { authorization: auth }, signal: AbortSignal.timeout(5000) })
        .catch(() => undefined)
      if (response?.status !== 200) return false
      const status = Schema.decodeUnknownSync(Lights)(await response.json())
      return Object.values(status.lights).every((light) => light.state === "green")
    }
    const pending = new Set(tenants.map((t) => t.prefix))
    let greenAt = Number.NaN
    const allGreen = yield* until("every tenant green", async () => {
      // Ends the wait: reported below, with the log that says why (a throw here would end the bench without a result).
      if (connector.exited()) return true
      // All pending pages at once: a page looked at late must not count as a late start-up.
      const checked = await Promise.all([...pending].map(async (prefix) => [prefix, await green(prefix)] as const))
      const at = performance.now()
      for (const [prefix, isGreen] of checked) if (isGreen) pending.delete(prefix)
      if (pending.size === 0) greenAt = at
      return pending.size === 0
    }, STARTUP_SECONDS * 1000, 250).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
    const startupMs = (allGreen ? greenAt : performance.now()) - connector.spawnedAt
    if (!allGreen || connector.exited()) {
      return yield* emit({
        scenario: `tenants-${TENANTS}`,
        startupFailed: connector.exited()
          ? `the connector exited during the start-up, ${pending.size} of ${TENANTS} tenants not green; see ${connector.logFile}`
          : `${pending.size} of ${TENANTS} tenants not green after ${STARTUP_SECONDS} s`,
        notGreen: [...pending],
        rssMb: connector.peakSampledRssMb(),
        connectorExited: connector.exited(),
        loadAverageAtStart: loadAtStart
      })
    }
    yield* progress(`tenants-${TENANTS}: all green after ${seconds(startupMs)} s`)
    if (STARTUP_ONLY) {
      return yield* emit({
        scenario: `tenants-${TENANTS}`,
        startupOnly: true,
        loadAverageAtStart: loadAtStart,
        startupSeconds: seconds(startupMs),
        peakRssMb: connector.peakRssMb(),
        // The probe's heap peak since the start (MB) and V8's limit: how close a start-up comes to "heap out of memory".
        heapPeakMb: connector.probe()?.peakMb.heapUsed,
        heapLimitMb: connector.probe()?.heapLimitMb
      })
    }

    // Settled: the first reconcile and writes done; then the resident set and the live heap.
    yield* Effect.sleep("10 seconds")
    const rssGreenMb = round((Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${connector.pid}/status`, "utf8"))?.[1]) || Number.NaN) / 1024)
    const connectorThreads = threadsOf(connector.pid)
    connector.requestLiveHeap(false)
    yield* until("the live heap", () => connector.probe()?.liveHeap !== undefined, 20_000, 200)
    const live = connector.probe()!.liveHeap!
    // Idle: what 50 tenants cost with no change at all (timers, status pages, keep-alives), over IDLE_SECONDS.
    const idleFrom = processCpuMs(connector.pid)
    yield* Effect.sleep(`${IDLE_SECONDS} seconds`)
    const idleTo = processCpuMs(connector.pid)
    const idlePercent = idleFrom === undefined || idleTo === undefined ? undefined : {
      all: round((idleTo.all - idleFrom.all) / (IDLE_SECONDS * 10)),
      main: round((idleTo.main - idleFrom.main) / (IDLE_SECONDS * 10))
    }

    // The simulators first (their cold start is the bench's, not the connector's), then BENCH_WARMUP's diagnosis.
    const simWarmup = SIM_WARMUP_CHANGES >= 2 * TENANTS ? yield* runSimWarmup(sims) : undefined
    if (simWarmup !== undefined) yield* progress(`tenants-${TENANTS}: simulators warmed against a sink (${simWarmup.changes} changes, ${simWarmup.sinkPosts} POSTs, ${simWarmup.seconds} s)`)
    if (WARMUP > 0) yield* runWarmup(sims)
    // The burst: every user of every tenant once, interleaved over the tenants; each thread issues and times its own.
    connector.resetProbe()
    const before = yield* metricsText(port)
    const cpuBefore = processCpuMs(connector.pid)
    const threadsBefore = threadCpuMs(connector.pid)
    const schedBefore = mainThreadSched(connector.pid)
    const burstFrom = performance.now()
    const overflowsBefore = listenOverflows()
    const queue = watchListenQueue(port)
    const benchBefore = threadCpuMs(process.pid)
    const startAt = epochNow() + 200
    const bySecond = threadsBySecond([connector.pid, process.pid])
    const results = yield* runBurst(sims, startAt)
    const cpuBySecond = bySecond.stop()
    const benchAfter = threadCpuMs(process.pid)
    const listenQueue = queue.stop()
    const cpuAfter = processCpuMs(connector.pid)
    const threadsAfter = threadCpuMs(connector.pid)
    const schedAfter = mainThreadSched(connector.pid)
    const burstWallMs = performance.now() - burstFrom
    const overflows = listenOverflows() - overflowsBefore
    const probe = connector.probe()
    const after = yield* metricsText(port)
    // With BENCH_KEEP=1: both scrapes, for every tenant's histograms.
    if (process.env["BENCH_KEEP"] !== undefined) {
      writeFileSync(join(dir, "metrics-before.txt"), before)
      writeFileSync(join(dir, "metrics-after.txt"), after)
    }
    const all = (pick: (r: SimWorkerResult) => ReadonlyArray<number>) => results.flatMap((r) => [...pick(r)])
    const changes = results.reduce((n, r) => n + r.changes, 0)
    const issuedMs = Math.max(...results.map((r) => r.issuedEndAt)) - startAt
    const answers = all((r) => r.webhookAnswers)

    yield* emit({
      scenario: `tenants-${TENANTS}`,
      tenants: TENANTS,
      users: TENANTS * USERS,
      loadAverageAtStart: loadAtStart,
      simulatorThreads: SIM_THREADS,
      simulatorNice: SIM_NICE,
      // What each simulator thread ran at, read back in the thread (a setPriority that failed shows here).
      simulatorThreadsNice: results.map((r) => r.nice),
      // Which warm-up ran before the burst: the simulators' alone (their POSTs to a sink, BENCH_SIM_WARMUP), and
      // BENCH_WARMUP's changes through the connector (which warms the connector too: a diagnosis, 0 by default).
      warmup: {
        simulators: simWarmup ?? null,
        throughConnectorUsersPerTenant: WARMUP,
        measure: "simulators: users changed to Away and back, notifications built, encrypted, signed and POSTed to a sink in the bench, not the connector (bench/simWarmup.ts)"
      },
      startupSeconds: seconds(startupMs),
      memory: {
        rssGreenMb,
        peakRssMb: connector.peakRssMb(),
        threads: connectorThreads,
        liveHeapMb: live.heapUsedMb,
        heapPeakDuringBurstMb: probe?.peakMb.heapUsed
      },
      burst: {
        changes,
        ratePerSecond: BURST_RATE,
        issuedSeconds: seconds(issuedMs),
        issuedPerSecond: Math.round(changes / (issuedMs / 1000)),
        lastArrivedSeconds: seconds(Math.max(...results.map((r) => r.lastArrivedAt).filter((at) => !Number.isNaN(at))) - startAt),
        arrived: results.reduce((n, r) => n + r.arrived, 0),
        addedLatencyMs: summary(all((r) => r.added)),
        // How many of the slowest 1 % of changes were posted in each second of the burst: a tail at the burst's start
        // (connections opened, code not yet optimised) reads differently from one spread over it.
        slowestPercentBySecond: slowestBySecond(all((r) => r.added), all((r) => r.addedPostedMs)),
        changeToSetPresenceMs: summary(all((r) => r.changeToSetPresence)),
        // The connector's CPU over the burst and its drain, per change (as rich-burst-10k's connectorPerChangeUs).
        connectorPerChangeUs: cpuBefore === undefined || cpuAfter === undefined ? null : {
          all: round(((cpuAfter.all - cpuBefore.all) * 1000) / changes, 0),
          mainThread: round(((cpuAfter.main - cpuBefore.main) * 1000) / changes, 0),
          // Of which in the kernel (system calls; on loopback a send also runs the receiving side's TCP stack).
          mainThreadSystem: round(((cpuAfter.mainSystem - cpuBefore.mainSystem) * 1000) / changes, 0)
        },
        // % of a core with every tenant running and no change (IDLE_SECONDS before the burst): all threads, main.
        connectorIdlePercent: idlePercent ?? null,
        // By kind of thread (bench/stats.ts threadCpuMs), and the rich items read instead of decrypted (FloodGate.ts).
        connectorPerChangeUsByThread: threadsBefore === undefined || threadsAfter === undefined ? null : Object.fromEntries(
          Object.entries(threadsAfter).map(([kind, ms]) => [kind, round(((ms - (threadsBefore[kind] ?? 0)) * 1000) / changes, 0)])
        ),
        floodFallbackItems: counterSum(after, "connector_flood_fallback_items_total") - counterSum(before, "connector_flood_fallback_items_total"),
        webhookPosts: answers.length,
        // Connections the kernel refused over the burst for a full listen queue (the machine's, all ports).
        listenQueueOverflows: overflows,
        // The connector's own port over the burst: its accept queue (max) against its size, SYN_RECV / ESTABLISHED max.
        listenQueue,
        webhookAnswerMs: summary(answers),
        // The POSTs answered after more than 3 s (Graph would send them again): when in the burst they started (s) and
        // how long they took (s).
        slowPosts: {
          startedSeconds: summary(results.flatMap((r) => r.slowPosts.map((p) => p.startedMs / 1000))),
          tookSeconds: summary(results.flatMap((r) => r.slowPosts.map((p) => p.tookMs / 1000)))
        },
        // The connector's own view (its histograms, bucket-interpolated, every tenant's series summed; the slowest
        // tenant's own): notification received → SetPresence sent, and the webhook handler's answer produced / flushed.
        connectorSide: {
          ...connectorSide(after, before),
          // Node's HTTP server handing the request on → the answer finished: includes the wait before the handler.
          requestToAnswerMs: probe?.notificationRequestMs,
          // TCP connections accepted over the burst, most open at once, notification POSTs on a connection of their own.
          connections: probe?.connections
        },
        eventLoopDelayMs: probe?.eventLoopDelayMs,
        // The main thread's collections over the burst by kind, and its turns longer than 100 ms (when, how long, GC in them).
        gc: probe?.gc,
        // The connector's main thread by second of the window (from just before the burst), and its major collections.
        mainThreadBySecond: probe?.stalls?.mainThreadBySecond,
        majorGcAtS: probe?.stalls?.majorGcAtS,
        // CPU ms of each kind of thread in each second from the burst's start: the connector's, and the bench process's
        // (its simulator threads are `workerThreads`).
        cpuBySecond: { connector: cpuBySecond[0], bench: cpuBySecond[1] },
        // The main thread over the burst and its drain (wall ms): on a CPU, runnable but waiting for one, asleep.
        mainThreadSched: schedBefore === undefined || schedAfter === undefined ? null : {
          wallMs: round(burstWallMs, 0),
          runMs: round(schedAfter.runMs - schedBefore.runMs, 0),
          waitingForCpuMs: round(schedAfter.waitMs - schedBefore.waitMs, 0),
          asleepMs: round(burstWallMs - (schedAfter.runMs - schedBefore.runMs) - (schedAfter.waitMs - schedBefore.waitMs), 0),
          voluntarySwitches: schedAfter.voluntary - schedBefore.voluntary,
          involuntarySwitches: schedAfter.involuntary - schedBefore.involuntary
        },
        // The simulator threads: if these grow, the bench is behind and its figures include its own queueing.
        simulatorThreads: results.map((r) => ({
          eventLoopDelayMs: r.eventLoopDelayMs,
          cpuMs: r.cpuMs,
          cpuSystemMs: r.cpuSystemMs,
          perChangeUs: round((r.cpuMs * 1000) / r.changes, 0)
        })),
        // The bench process over the burst and its drain, per change of the whole burst (µs): all its threads, the
        // simulator threads together (their own clocks), and by kind of thread (bench/stats.ts threadCpuMs; the
        // simulator threads are its `workerThreads`).
        benchPerChangeUs: benchBefore === undefined || benchAfter === undefined ? null : {
          all: round(((Object.values(benchAfter).reduce((a, b) => a + b, 0) - Object.values(benchBefore).reduce((a, b) => a + b, 0)) * 1000) / changes, 0),
          simulatorThreads: round((results.reduce((n, r) => n + r.cpuMs, 0) * 1000) / changes, 0),
          byThread: Object.fromEntries(Object.entries(benchAfter).map(([kind, ms]) => [kind, round(((ms - (benchBefore[kind] ?? 0)) * 1000) / changes, 0)]))
        },
        measure: "added latency: the notification POST carrying the change → SetPresence applied at the PBX simulator; changeToSetPresence: from the Graph simulator's setPresence call (includes its 20 ms batch window and queueing)"
      },
      targets: {
        allGreenUnder30s: { target: TARGETS.allGreenSeconds, pass: startupMs / 1000 < TARGETS.allGreenSeconds },
        rssUnder400MB: { target: TARGETS.rssMb, pass: connector.peakRssMb() < TARGETS.rssMb },
        burstAddedLatencyP99Under100ms: {
          target: TARGETS.addedLatencyP99Ms,
          pass: percentile(all((r) => r.added), 99) < TARGETS.addedLatencyP99Ms,
          simulatorNice: SIM_NICE
        }
      }
    })
  })
