/**
 * `npm run bench -- cluster-3` (docs/scaling.md, docs/performance.md): the cluster demo's set-up at scale — an embedded
 * PostgreSQL, three runner processes (`run --cluster`, standard timing, the shipped Node flags) behind the front, and
 * BENCH_CLUSTER_TENANTS (50) tenants of BENCH_CLUSTER_USERS (400) users each, 20,000 in all, every tenant with its own
 * Graph simulator and PBX system in this process. It prints one JSON line with:
 *   startup       from the runners' spawn until every tenant's status page is green through the front;
 *   steady        the added latency (`addedLatencyMs`: the notification POST carrying a change → SetPresence at the PBX, as
 *                 one process's scenarios measure it; the figure held against the target) and Graph change → SetPresence
 *                 at the PBX (`changeToSetPresenceMs`, with the simulator's batch window) at BENCH_CLUSTER_RATE changes/s
 *                 (default 50) over 20 s, after
 *                 BENCH_CLUSTER_WARMUP_SECONDS (10) of the same stream timed apart (`warmUp`: the runners' first
 *                 notifications compile their path),
 *                 spread over all tenants (p50/p99, and how many arrived); with the runners' own figures for the same
 *                 window: per stage of the path (bench/clusterStages.ts) and each runner's event-loop delay;
 *   rss           per runner (VmRSS at steady state, VmHWM) and the tenants each owns;
 *   failover      kill -9 of the runner owning the most tenants: until its tenants are owned again, and until a change
 *                 made in each of them right after the kill is at its PBX.
 * BENCH_CLUSTER_RUNNERS (3; with 1 there is no failover) runs the same load on fewer runners, BENCH_CLUSTER_SETTLE_SECONDS
 * (5) is the wait between all green and the steady phase, BENCH_PROFILE=<dir> leaves the runners' CPU profiles there.
 * BENCH_CLUSTER_TRACE=1 adds `steady.slowestHops` (bench/clusterTail.ts): the slowest 2 % of changes hop by hop beside
 * each process's late ticks and collector pauses, and each runner's late ticks split into time on a CPU and waiting
 * for one; BENCH_CLUSTER_TRACE_FILE=<file> keeps the raw timelines and the runners' logs there. BENCH_RUNNER_NODE_FLAGS
 * gives the runners more Node/V8 flags (e.g. `--trace-gc`, or heap sizes to try); with the probe's
 * BENCH_ALLOCATION_PROFILE_WINDOW=20 and BENCH_ALLOCATION_PROFILE_PROMOTED=1 each runner leaves a profile of what it
 * promoted to the old generation during the steady phase beside its probe file.
 */
import { copyFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { monitorEventLoopDelay, performance } from "node:perf_hooks"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Fiber, Layer, Redacted, Schedule } from "effect"
import { startClusterDemo } from "../src/demo/ClusterDemo.ts"
import { cpuNow, cpuShare, loopDelays, probeTrace, perRunner as stagesPerRunner, probePattern, readMetrics, removeProbes, resetProbes, stageFigures } from "./clusterStages.ts"
import { shippedNodeFlags } from "./connectorProcess.ts"
import { emit, progress, seconds, TARGETS, until } from "./report.ts"
import { percentile, processMemory, round, summary } from "./stats.ts"
import { tapSetPresence, tapWebhookPosts } from "./taps.ts"
import { perChange, type ChangeTimes } from "./clusterChanges.ts"
import { type RunnerTrace, slowestHops, type TracedChange } from "./clusterTail.ts"

const TENANTS = Number(process.env["BENCH_CLUSTER_TENANTS"] ?? 50)
const USERS = Number(process.env["BENCH_CLUSTER_USERS"] ?? 400)
const RATE = Number(process.env["BENCH_CLUSTER_RATE"] ?? 50)
const RUNNERS = Number(process.env["BENCH_CLUSTER_RUNNERS"] ?? 3)
const STEADY_SECONDS = 20
/**
 * Seconds of the same stream of changes before the measured steady phase (BENCH_CLUSTER_WARMUP_SECONDS): the runners'
 * notification path has not run before (the start-up makes no changes), and its first seconds are its compilation.
 */
const WARMUP_SECONDS = Number(process.env["BENCH_CLUSTER_WARMUP_SECONDS"] ?? 10)
/** Seconds between all green and the steady phase (BENCH_CLUSTER_SETTLE_SECONDS). */
const SETTLE_SECONDS = Number(process.env["BENCH_CLUSTER_SETTLE_SECONDS"] ?? 5)
const PASSWORD = "bench-cluster-admin-password"
const states = [
  { availability: "Busy", activity: "InAMeeting", pbx: "meeting" },
  { availability: "Away", activity: "Away", pbx: "away" },
  { availability: "DoNotDisturb", activity: "DoNotDisturb", pbx: "dnd" },
  { availability: "Available", activity: "Available", pbx: "available" }
] as const

export const cluster3 = (repoRoot: string) =>
  Effect.gen(function*() {
    const setPresences = tapSetPresence()
    yield* Effect.addFinalizer(() => Effect.sync(setPresences.uninstall))
    // Each change's notification POST: when it started and was answered (the per-change attribution of the steady phase).
    const posts = tapWebhookPosts((url) => url.endsWith("/graph/notifications"))
    yield* Effect.addFinalizer(() => Effect.sync(posts.uninstall))
    const ids = ["default", ...Array.from({ length: TENANTS - 1 }, (_, i) => `t${String(i + 1).padStart(2, "0")}`)]
    // Each runner's event-loop delay: the bench probe, preloaded, one file per runner process.
    process.env["BENCH_PROBE_FILE"] = probePattern
    // BENCH_CLUSTER_TRACE=1: the slowest changes hop by hop beside each process's pauses (bench/clusterTail.ts).
    const tracing = process.env["BENCH_CLUSTER_TRACE"] === "1"
    if (tracing) process.env["BENCH_PROBE_TRACE"] = "1"
    // Removed once the demo has stopped its runners (finalizers run last-in first-out): they write until they stop.
    const pids: Array<number> = []
    yield* Effect.addFinalizer(() => Effect.sync(() => removeProbes(pids)))
    const spawnedAt = performance.now()
    const demo = yield* startClusterDemo({
      port: 0,
      adminPassword: Redacted.make(PASSWORD),
      tenants: ids,
      users: USERS,
      changeEverySeconds: 0,
      timing: "standard",
      runners: RUNNERS,
      runnerCommand: [
        ...shippedNodeFlags(repoRoot),
        // BENCH_RUNNER_NODE_FLAGS: more Node/V8 flags for the runners (after the shipped ones, so they win), to try one.
        ...(process.env["BENCH_RUNNER_NODE_FLAGS"] ?? "").split(/\s+/).filter((flag) => flag !== ""),
        // BENCH_PROFILE=<dir>: each runner's CPU profile (written when it stops; the killed runner's is lost).
        ...(process.env["BENCH_PROFILE"] === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${process.env["BENCH_PROFILE"]}`]),
        "--import", join(repoRoot, "bench/probe.ts"), join(repoRoot, "src/main.ts")
      ]
    })
    pids.push(...demo.runners.map((r) => r.pid))
    yield* progress(`cluster-3: ${TENANTS} tenants × ${USERS} users, runners ${demo.runners.map((r) => r.pid).join(", ")}; files in ${demo.dir}`)
    const auth = "Basic " + Buffer.from(`admin:${PASSWORD}`).toString("base64")
    const green = async (url: string) => {
      const response = await fetch(`${url}api/status`, { headers: { authorization: auth }, signal: AbortSignal.timeout(5000) }).catch(() => undefined)
      if (response?.status !== 200) return false
      const status = (await response.json()) as { lights: Record<string, { state: string }> }
      return Object.values(status.lights).every((light) => light.state === "green")
    }
    const pending = new Set(demo.tenants.map((t) => t.statusUrl))
    const startupBound = Number(process.env["BENCH_CLUSTER_STARTUP_SECONDS"] ?? 600) * 1000
    const allGreen = yield* until(`every tenant green`, async () => {
      for (const url of [...pending]) if (await green(url)) pending.delete(url)
      return pending.size === 0
    }, startupBound, 2000).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
    if (!allGreen) {
      // What it got to: the tenants still not green, and what the runners hold by then.
      yield* emit({
        scenario: "cluster-3",
        tenants: TENANTS,
        users: TENANTS * USERS,
        startupFailed: `${pending.size} of ${TENANTS} tenants not green after ${startupBound / 1000} s`,
        notGreen: [...pending].map((url) => new URL(url).pathname),
        rssMb: demo.runners.map((r) => ({ runner: r.name, ...processMemory(r.pid) }))
      })
      return
    }
    const startupMs = performance.now() - spawnedAt
    yield* progress(`cluster-3: all ${TENANTS} tenants green after ${seconds(startupMs)} s`)
    // The CPU of the settling seconds before the steady phase: whether start-up's work is still going on.
    const settleCpuBefore = cpuNow(pids)
    const settleBegan = performance.now()
    yield* Effect.sleep(`${SETTLE_SECONDS} seconds`)
    const settleCpu = cpuShare(settleCpuBefore, cpuNow(pids), performance.now() - settleBegan)

    // Steady state: change k is in tenant k % TENANTS for person k % (people per tenant). The tenants' populations are
    // alike (the same PBX guids), so consecutive changes take different people: two changes in flight never share a guid.
    const teams = demo.tenants.map((t) => t.population.people.filter((p) => p.teams))
    let began = performance.now()
    type Sent = { readonly at: number; readonly activity: string; readonly tenant: string; readonly graphId: string }
    const sent = new Map<string, Sent>()
    const latencies: Array<number> = []
    // The added latency as one process's scenarios measure it (sustained-500, rich-burst-10k, tenants-50): from the
    // notification POST carrying the change to the SetPresence at the PBX, without the simulator's batch window.
    const added: Array<number> = []
    const changes: Array<ChangeTimes> = []
    const wall = (at: number) => performance.timeOrigin + at
    const traced: Array<TracedChange> = []
    const stop = setPresences.onStamp((stamp) => {
      const change = sent.get(stamp.guid)
      if (change !== undefined && change.activity === stamp.activity) {
        latencies.push(stamp.at - change.at)
        sent.delete(stamp.guid)
        const id = change.graphId.toLowerCase()
        const postAt = posts.sentAt.get(id)
        const valid = postAt !== undefined && postAt >= change.at
        if (valid) added.push(stamp.at - postAt)
        if (valid && tracing) {
          const answered = posts.answeredAt.get(id)
          traced.push({ tenant: change.tenant, guid: stamp.guid, postAt: wall(postAt), answeredAt: answered === undefined ? undefined : wall(answered), setAt: wall(stamp.at) })
        }
        changes.push({
          tenant: change.tenant,
          guid: stamp.guid,
          at: change.at - began,
          total: stamp.at - change.at,
          ...(valid ? { window: postAt - change.at } : {}),
          ...(valid && posts.answeredAt.has(id) ? { ingress: posts.answeredAt.get(id)! - postAt } : {}),
          ...(valid && posts.answeredAt.has(id) ? { rest: stamp.at - posts.answeredAt.get(id)! } : {})
        })
      }
    })
    const total = RATE * STEADY_SECONDS
    const ports = demo.runners.map((r) => r.httpPort)
    const sql = Context.get(yield* Layer.build(PgClient.layer({ url: demo.databaseUrl, maxConnections: 2 })), PgClient.PgClient)
    // What PostgreSQL's sessions are doing during the steady phase (the LISTEN sessions above all), every 500 ms;
    // BENCH_CLUSTER_SESSIONS=0 leaves it out.
    const sessions = new Map<string, number>()
    const sampleSessions = process.env["BENCH_CLUSTER_SESSIONS"] !== "0"
    const sampler = yield* sql<{ what: string; n: number }>`SELECT CASE WHEN query ILIKE 'LISTEN%' THEN 'listen' ELSE 'other' END
        || ' ' || coalesce(state, '-') || ' ' || coalesce(wait_event_type, '-') || ':' || coalesce(wait_event, '-') AS what, count(*)::int AS n
      FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1`.pipe(
      Effect.map((rows) => { for (const r of rows) sessions.set(r.what, (sessions.get(r.what) ?? 0) + r.n) }),
      Effect.ignore,
      Effect.repeat(Schedule.spaced("500 millis")),
      Effect.when(Effect.succeed(sampleSessions)),
      Effect.forkScoped
    )
    // Changes k = from … from + count - 1 at RATE from `start`. A person comes round again after lcm(TENANTS, people)
    // changes, with the state index moved on by TENANTS / gcd(TENANTS, people): 1, 2, 5, 10, 25 or 50, never a multiple of
    // the three states used, so each visit is a change.
    const issue = (from: number, count: number, start: number, record: (guid: string, change: Sent) => void) =>
      Effect.gen(function*() {
        for (let i = 0; i < count; i++) {
          const k = from + i
          const wait = start + (i * 1000) / RATE - performance.now()
          if (wait > 0) yield* Effect.sleep(wait)
          const tenant = demo.tenants[k % TENANTS]!
          const people = teams[k % TENANTS]!
          const person = people[k % people.length]!
          // Three states, never Available: people start with it, and a change to it changed nothing in the runs that used it.
          const state = states[Math.floor(k / people.length) % (states.length - 1)]!
          record(person.pbxGuid, { at: performance.now(), activity: state.pbx, tenant: tenant.id, graphId: person.graphId })
          yield* tenant.graph.setPresence(person.graphId, state)
        }
      })
    // The warm-up: the same stream, timed apart (its first seconds are the runners' first notifications).
    const warmup = RATE * WARMUP_SECONDS
    const warming = new Map<string, Sent>()
    const warmStart = performance.now()
    const warmChanges: Array<{ at: number; total: number }> = []
    const stopWarm = setPresences.onStamp((stamp) => {
      const change = warming.get(stamp.guid)
      if (change !== undefined && change.activity === stamp.activity) {
        warming.delete(stamp.guid)
        warmChanges.push({ at: change.at - warmStart, total: stamp.at - change.at })
      }
    })
    yield* issue(0, warmup, warmStart, (guid, change) => warming.set(guid, change))
    const warmUp = {
      seconds: WARMUP_SECONDS,
      changes: warmup,
      arrivedBeforeSteady: warmChanges.length,
      ...(warmChanges.length === 0 ? {} : {
        p50: round(percentile(warmChanges.map((c) => c.total), 50)),
        p90: round(percentile(warmChanges.map((c) => c.total), 90)),
        p99: round(percentile(warmChanges.map((c) => c.total), 99))
      }),
      bySecond: Array.from({ length: WARMUP_SECONDS }, (_, i) => {
        const totals = warmChanges.filter((c) => Math.floor(c.at / 1000) === i).map((c) => c.total)
        return totals.length === 0 ? null : [totals.length, round(percentile(totals, 50)), round(Math.max(...totals))]
      })
    }
    stopWarm()
    // The database's transactions over the steady phase (every statement outside BEGIN … COMMIT is one).
    const transactions = sql<{ n: string }>`SELECT (xact_commit + xact_rollback)::text AS n FROM pg_stat_database WHERE datname = current_database()`.pipe(
      Effect.map((rows) => Number(rows[0]?.n ?? Number.NaN)),
      Effect.orElseSucceed(() => Number.NaN)
    )
    const transactionsBefore = yield* transactions
    // Per table over the steady phase: rows written and reads by index or scan (which statements each change costs).
    const tableStats = sql<{ relname: string; ins: string; upd: string; del: string; idx: string; seq: string }>`SELECT relname,
        n_tup_ins::text AS ins, n_tup_upd::text AS upd, n_tup_del::text AS del,
        coalesce(idx_scan, 0)::text AS idx, coalesce(seq_scan, 0)::text AS seq
      FROM pg_stat_user_tables`.pipe(
      Effect.map((rows) => new Map(rows.map((r) => [r.relname, [r.ins, r.upd, r.del, r.idx, r.seq].map(Number)] as const))),
      Effect.orElseSucceed(() => new Map<string, Array<number>>())
    )
    const tablesBefore = yield* tableStats
    const metricsBefore = yield* Effect.promise(() => readMetrics(ports))
    resetProbes(pids)
    // The bench's own event loop carries every Graph and PBX simulator: its delay is in every latency measured here.
    const benchLoop = monitorEventLoopDelay({ resolution: 5 })
    benchLoop.enable()
    // The bench's own late ticks (it carries the front and every simulator), for the slowest changes' attribution.
    const benchLate: Array<[number, number]> = []
    let benchTick = performance.now()
    const benchTicker = tracing
      ? setInterval(() => {
        const now = performance.now()
        if (now - benchTick - 10 > 4) benchLate.push([wall(benchTick), now - benchTick - 10])
        benchTick = now
      }, 10)
      : undefined
    const cpuBefore = cpuNow(pids)
    posts.start()
    began = performance.now()
    const steadyAtSeconds = seconds(began - spawnedAt)
    yield* issue(warmup, total, began, (k, change) => sent.set(k, change))
    yield* until("the steady changes at their PBXs", () => sent.size === 0, 20_000).pipe(Effect.ignore)
    stop()
    posts.stop()
    const cpu = cpuShare(cpuBefore, cpuNow(pids), performance.now() - began)
    const transactionsInSteady = (yield* transactions) - transactionsBefore
    // The statistics collector reports a session's counts at its transaction's end (at most once a second).
    yield* Effect.sleep("1500 millis")
    const tablesAfter = yield* tableStats
    const tablesPerChange = Object.fromEntries([...tablesAfter].flatMap(([name, after]) => {
      const before = tablesBefore.get(name) ?? [0, 0, 0, 0, 0]
      const [ins, upd, del, idx, seq] = after.map((n, i) => round((n - before[i]!) / total, 2))
      return ins! + upd! + del! + idx! + seq! === 0 ? [] : [[name, { ins, upd, del, idx, seq }]]
    }))
    // Where each change's tenant was owned and its PBX's socket held at the end of the steady phase.
    const placement = yield* sql<{ tenant_id: string; guid: string; owner: string | null; holder: string | null }>`SELECT d.tenant_id, d.guid,
        o.runner AS owner, l.runner AS holder
      FROM pbx_desired AS d LEFT JOIN tenant_owner AS o ON o.tenant_id = d.tenant_id
        LEFT JOIN pbx_lease AS l ON l.tenant_id = d.tenant_id AND l.pbx = d.pbx`.pipe(Effect.orElseSucceed(() => []))
    yield* Fiber.interrupt(sampler)
    // Rows a PBX's holder has not confirmed for 30 s (every holder reads them again on each wake-up of their tenant).
    const unconfirmed = yield* sql<{ tenant_id: string; pbx: string; rows: number }>`SELECT tenant_id, pbx, count(*)::int AS rows
      FROM pbx_desired WHERE version > confirmed_version AND updated_at < now() - interval '30 seconds'
      GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 10`.pipe(Effect.orElseSucceed(() => []))
    const metricsAfter = yield* Effect.promise(() => readMetrics(ports))
    const loops = loopDelays(pids)
    if (benchTicker !== undefined) clearInterval(benchTicker)
    const tail = tracing
      ? slowestHops(
        traced,
        demo.runners.map((r, i) => ({ name: r.name, id: `127.0.0.1:${r.httpPort}`, trace: probeTrace(pids[i]!) as RunnerTrace | undefined })),
        benchLate,
        new Map(placement.map((p) => [`${p.tenant_id}|${p.guid}`, p] as const)),
        wall(began)
      )
      : undefined
    // BENCH_CLUSTER_TRACE_FILE=<file>: the raw timelines, to look at offline.
    const traceFile = process.env["BENCH_CLUSTER_TRACE_FILE"]
    if (tracing && traceFile !== undefined) {
      writeFileSync(traceFile, JSON.stringify({
        began: wall(began),
        changes: traced,
        benchLate,
        placement,
        runners: demo.runners.map((r, i) => ({ name: r.name, id: `127.0.0.1:${r.httpPort}`, trace: probeTrace(pids[i]!) }))
      }))
      // The runners' logs too (with BENCH_RUNNER_NODE_FLAGS=--trace-gc: each collection and its reason).
      for (const r of demo.runners) copyFileSync(r.logFile, `${traceFile}.${r.name}.log`)
    }
    benchLoop.disable()
    const rss = yield* Effect.forEach(demo.runners, (r) => Effect.sync(() => ({ runner: r.name, ...processMemory(r.pid) })))

    // Failover: kill -9 of the busiest runner.
    const owners = sql<{ tenant_id: string; runner: string }>`SELECT tenant_id, runner FROM tenant_owner`.pipe(
      Effect.map((rows) => new Map(rows.map((r) => [r.tenant_id, r.runner])))
    )
    const before = yield* owners
    const perRunner = demo.runners.map((r) => ({ runner: r, tenants: [...before].filter(([, o]) => o === `127.0.0.1:${r.httpPort}`).map(([t]) => t) }))
    // With one runner (BENCH_CLUSTER_RUNNERS=1: the same load without the hops between runners) there is no failover.
    let failover: unknown = { skipped: "one runner" }
    let ownedAgainSeconds: number | undefined
    if (demo.runners.length > 1) {
      const victim = perRunner.reduce((a, b) => (b.tenants.length > a.tenants.length ? b : a))
      const victimId = `127.0.0.1:${victim.runner.httpPort}`
      const killedAt = performance.now()
      process.kill(victim.runner.pid, "SIGKILL")
      // One change per moved tenant right after the kill: the new owner must bring it to the PBX.
      const moved = demo.tenants.filter((t) => victim.tenants.includes(t.id))
      const probes = moved.map((t, i) => ({ tenant: t, person: teams[demo.tenants.indexOf(t)]![i % 3]! }))
      const arrived = new Map<string, number>()
      const stopProbe = setPresences.onStamp((stamp) => {
        if (stamp.activity === "away") arrived.set(stamp.guid + "|" + stamp.at, stamp.at)
      })
      yield* Effect.forEach(probes, (p) => p.tenant.graph.setPresence(p.person.graphId, { availability: "Away", activity: "Away" }), { discard: true })
      let ownedAgainMs = Number.NaN
      yield* until("the killed runner's tenants owned again", async () => {
        const now = await Effect.runPromise(owners)
        const done = victim.tenants.every((t) => now.get(t) !== undefined && now.get(t) !== victimId)
        if (done) ownedAgainMs = performance.now() - killedAt
        return done
      }, 120_000, 200)
      const writing = new Map<string, number>()
      yield* until("the change made after the kill at every moved tenant's PBX", async () => {
        for (const p of probes) {
          if (writing.has(p.tenant.id)) continue
          const entries = await Effect.runPromise(p.tenant.pbx.presence(p.person.pbxGuid))
          if (entries.find((e) => e.contact === "teams:")?.activity === "away") writing.set(p.tenant.id, performance.now() - killedAt)
        }
        return writing.size === probes.length
      }, 180_000, 250)
      stopProbe()
      ownedAgainSeconds = seconds(ownedAgainMs)
      failover = {
        killed: victim.runner.name,
        tenantsMoved: victim.tenants.length,
        ownedAgainSeconds: seconds(ownedAgainMs),
        changeAtPbxSeconds: { max: seconds(Math.max(...writing.values())), median: seconds(percentile([...writing.values()], 50)) },
        target: "owned again < 30 s"
      }
    }

    yield* emit({
      scenario: "cluster-3",
      runners: demo.runners.length,
      tenants: TENANTS,
      users: TENANTS * USERS,
      timing: "standard (lock refresh 5 s, expiry 15 s)",
      startupSeconds: seconds(startupMs),
      steady: {
        // From the runners' spawn (their CPU profiles' start, BENCH_PROFILE, within a second).
        startedAtSeconds: steadyAtSeconds,
        ratePerSecond: RATE,
        changes: total,
        arrived: latencies.length,
        // The figure held against the target (one process's added latency, sustained-500's p99): from the POST.
        addedLatencyMs: { ...summary(added), p90: round(percentile(added, 90)) },
        addedMeasure: "added latency, compared with the target: the notification POST carrying the change → SetPresence applied by the PBX simulator (as sustained-500, rich-burst-10k, tenants-50)",
        changeToSetPresenceMs: summary(latencies),
        p90: round(percentile(latencies, 90)),
        measure: "Graph simulator setPresence → SetPresence applied by the PBX simulator (includes the simulator's 20 ms batch window)",
        warmUp,
        perChangeMs: perChange(changes, placement, STEADY_SECONDS),
        stagesMs: stageFigures(metricsBefore, metricsAfter),
        stagesPerRunnerMs: stagesPerRunner(metricsBefore, metricsAfter),
        stagesMeasure: "the runners' connector_cluster_stage_seconds over the steady window, summed over the runners, bucket-interpolated (src/cluster/StageTimings.ts)",
        runnerEventLoopDelayMs: loops.map((l, i) => ({ runner: demo.runners[i]!.name, ...l.eventLoopDelayMs })),
        cpu,
        databaseTransactions: { steady: transactionsInSteady, perChange: round(transactionsInSteady / total) },
        databaseTablesPerChange: tablesPerChange,
        settleCpu: { seconds: SETTLE_SECONDS, runners: settleCpu.runners, postgres: settleCpu.postgres, bench: settleCpu.bench },
        unconfirmedOver30s: unconfirmed.map((r) => `${r.tenant_id}/${r.pbx}: ${r.rows}`),
        postgresSessions: Object.fromEntries([...sessions].sort((a, b) => b[1] - a[1])),
        ...(tail === undefined ? {} : { slowestHops: tail }),
        benchEventLoopDelayMs: { p50: round(benchLoop.percentile(50) / 1e6), p99: round(benchLoop.percentile(99) / 1e6), max: round(benchLoop.max / 1e6) }
      },
      rssMb: rss.map((r) => ({ ...r, tenants: perRunner.find((p) => p.runner.name === r.runner)!.tenants.length })),
      failover,
      targets: {
        // The issue's "target as for one process": one process's added-latency target (bench/report.ts).
        steadyAddedLatencyP99Under100ms: { target: TARGETS.addedLatencyP99Ms, pass: percentile(added, 99) < TARGETS.addedLatencyP99Ms },
        ownedAgainUnder30s: ownedAgainSeconds === undefined ? null : { target: 30, pass: ownedAgainSeconds < 30 }
      }
    })
  })
