/**
 * A worker thread of tenants-50 (bench/tenants50.ts): it hosts the Graph simulators and PBX systems of a share of the
 * tenants, so that the simulators' work runs on event loops of their own rather than on the bench's, and it measures
 * its tenants' burst where both ends are: the notification POST carrying a change (its Graph simulator's webhook
 * client) and the SetPresence applied at that tenant's PBX (its PBX simulator), on the same thread's clock.
 *
 * Messages: → `ready` (each tenant's configuration, its simulators running); ← `simWarmup` (BENCH_SIM_WARMUP: the
 * simulators warmed against a sink, bench/simWarmup.ts) → `simWarmed`; ← `warmup` (BENCH_WARMUP) → `warmed`;
 * ← `burst` (the common start on the epoch
 * clock and the rate); → `result` (samples, event-loop delay and CPU time of this thread); ← `stop` (simulators closed,
 * the thread ends).
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { Session } from "node:inspector/promises"
import { getPriority, setPriority } from "node:os"
import { dirname, join } from "node:path"
import { monitorEventLoopDelay, performance } from "node:perf_hooks"
import { parentPort, threadId, workerData } from "node:worker_threads"
import { Effect, Redacted } from "effect"
import { GraphSimulator } from "../src/simulators/graph/GraphSimulator.ts"
import { connectorSnippet, populationOptions } from "../src/simulators/graph/Standalone.ts"
import { SubscriptionsExtension } from "../src/simulators/graph/SubscriptionsRoutes.ts"
import { PbxSimulator } from "../src/simulators/pbx/PbxSimulator.ts"
import { pbxSystemOptions } from "../src/simulators/pbx/Standalone.ts"
import { generatePeople, resolvePopulation, type SimPopulation } from "../src/simulators/UsersFile.ts"
import * as YAML from "yaml"
import { round } from "./stats.ts"
import { type SimWarmupReport, warmSimulators } from "./simWarmup.ts"
import { tapSetPresence, tapWebhookPosts } from "./taps.ts"

export interface SimWorkerData {
  /** The connector's public port (its PBX websocket paths and notification URLs). */
  readonly port: number
  /** This thread's tenants with their place among all tenants (the burst interleaves all tenants in that order). */
  readonly tenants: ReadonlyArray<{ readonly id: string; readonly index: number }>
  readonly tenantCount: number
  readonly users: number
  readonly pbxPassword: string
  /** BENCH_SIM_PROFILE: a directory for a CPU profile of this thread over the burst and its drain. */
  readonly profileDir?: string | undefined
  /**
   * BENCH_SIM_NICE: this thread's niceness (Linux counts it per thread; raising it needs no privilege). The simulators
   * stand for Microsoft's cloud and 50 PBXs, which in production do not share the connector's cores: above 0 they take
   * the cores only when the connector's threads leave them free.
   */
  readonly nice?: number | undefined
}

export interface SimWorkerResult {
  readonly added: ReadonlyArray<number>
  /** For each of `added`: when its POST started, ms after the burst's start (where in the burst the slow ones are). */
  readonly addedPostedMs: ReadonlyArray<number>
  readonly changeToSetPresence: ReadonlyArray<number>
  readonly webhookAnswers: ReadonlyArray<number>
  /**
   * POSTs answered after more than 3 s — ones Graph would not count as delivered (its client gives up after 3 s and
   * sends them again): when each started (ms after the burst's start) and how long it took.
   */
  readonly slowPosts: ReadonlyArray<{ readonly startedMs: number; readonly tookMs: number }>
  readonly changes: number
  readonly arrived: number
  /** Epoch milliseconds: the last change issued, the last one arrived at its PBX. */
  readonly issuedEndAt: number
  readonly lastArrivedAt: number
  readonly eventLoopDelayMs: { readonly p50: number; readonly p99: number; readonly max: number }
  /** This thread's CPU time during the burst (ms), and the part of it in the kernel (system calls: sockets, timers). */
  readonly cpuMs: number
  readonly cpuSystemMs: number
  /** This thread's nice value, read back in it (pid 0: the calling thread). */
  readonly nice: number
}

export type ToWorker =
  | { readonly type: "burst"; readonly startAt: number; readonly rate: number }
  | { readonly type: "warmup"; readonly changes: number; readonly rate: number }
  | { readonly type: "simWarmup"; readonly changesPerTenant: number; readonly rate: number }
  | { readonly type: "stop" }
export type FromWorker =
  | { readonly type: "warmed" }
  | { readonly type: "simWarmed"; readonly report: SimWarmupReport }
  | { readonly type: "ready"; readonly tenants: ReadonlyArray<{ readonly id: string; readonly config: Record<string, unknown> }> }
  | { readonly type: "result"; readonly result: SimWorkerResult }

/** Milliseconds on a clock that every thread of the bench shares (the epoch, with sub-millisecond resolution). */
export const epochNow = (): number => performance.timeOrigin + performance.now()

/** A tenant's people: their own addresses, so their PBX guids and Teams ids are the tenant's alone. */
const populationOf = (id: string, users: number): SimPopulation =>
  resolvePopulation({ users: generatePeople(users).map((person, i) => ({ ...person, email: `user${i + 1}.${id}@contoso.com` })) }, users)

const tenantConfig = (graphUrl: string, population: SimPopulation, data: SimWorkerData) => ({
  ...(YAML.parse(connectorSnippet(graphUrl, population)) as Record<string, unknown>),
  // The process's address: the connector puts the tenant's /t/<id> in its subscriptions' URLs itself.
  notifications: { mode: "push", publicBaseUrl: `http://127.0.0.1:${data.port}` },
  pbx: { masterPbx: population.pbxs.find((pbx) => pbx.master)!.name, appPassword: data.pbxPassword },
  timers: { replanDebounceSeconds: 1 }
})

/** A CPU profile of this thread (the inspector's profiler, which a worker thread has of its own), written on stop. */
const startProfile = async () => {
  const session = new Session()
  session.connect()
  await session.post("Profiler.enable")
  await session.post("Profiler.setSamplingInterval", { interval: 500 })
  await session.post("Profiler.start")
  return {
    stop: async (file: string) => {
      const { profile } = await session.post("Profiler.stop")
      // A directory that is not there yet is made: a failed write would end the thread and leave the bench waiting.
      mkdirSync(dirname(file), { recursive: true })
      writeFileSync(file, JSON.stringify(profile))
      session.disconnect()
    }
  }
}

const program = (data: SimWorkerData, nextMessage: Effect.Effect<ToWorker>) =>
  Effect.gen(function*() {
    const setPresences = tapSetPresence()
    yield* Effect.addFinalizer(() => Effect.sync(setPresences.uninstall))
    const isNotificationUrl = (url: string) => url.startsWith(`http://127.0.0.1:${data.port}/`) && url.endsWith("/graph/notifications")
    const posts = tapWebhookPosts(isNotificationUrl)
    yield* Effect.addFinalizer(() => Effect.sync(posts.uninstall))
    const tenants = yield* Effect.forEach(data.tenants, ({ id, index }) =>
      Effect.gen(function*() {
        const population = populationOf(id, data.users)
        // Graph's rules for slow endpoints (answers over 2.9 s: notifications held back 10 minutes) and for answers
        // later than 3 s (not delivered, sent again) are off (slowMillis, answerTimeoutMillis): a bench that cannot
        // keep up would otherwise hold back or repeat the burst for a slowness of its own. The POSTs answered after
        // 3 s are counted instead (slowPosts).
        const graph = yield* GraphSimulator.make({
          ...populationOptions(population),
          extensions: [SubscriptionsExtension({ batchWindowMillis: 20, slowMillis: 10 * 60_000, answerTimeoutMillis: 10 * 60_000 })]
        })
        // The PBXs run before the connector does (they connect again each second until it listens), as in an installation.
        yield* PbxSimulator.make(pbxSystemOptions(population, {
          connectUrl: `ws://127.0.0.1:${data.port}${id === "default" ? "" : `/t/${id}`}/pbx`,
          password: Redacted.make(data.pbxPassword),
          reconnectDelayMs: 1000
        }))
        return { id, index, population, graph, config: tenantConfig(graph.url, population, data) }
      }), { concurrency: 4 })
    parentPort!.postMessage({ type: "ready", tenants: tenants.map(({ config, id }) => ({ id, config })) } satisfies FromWorker)

    let burst = yield* nextMessage
    // BENCH_SIM_WARMUP (bench/simWarmup.ts): the simulators alone warmed, their POSTs going to a sink, not the connector.
    if (burst.type === "simWarmup") {
      const perTenant = Math.floor(burst.changesPerTenant / 2)
      const report = yield* warmSimulators({
        // Interleaved over the tenants, as the burst is: one item per POST, each POST signed and sent on its own.
        users: Array.from({ length: perTenant }, (_, i) => tenants.flatMap((t) => {
          const person = t.population.people.filter((p) => p.teams)[i]
          return person === undefined ? [] : [{ graph: t.graph, id: person.graphId }]
        })).flat(),
        intervalMs: (1000 * data.tenantCount) / (burst.rate * tenants.length),
        isNotificationUrl
      })
      parentPort!.postMessage({ type: "simWarmed", report } satisfies FromWorker)
      burst = yield* nextMessage
    }
    // BENCH_WARMUP (a diagnosis, off by default): a few users of each tenant changed to Away first, at the burst's rate
    // per thread, and 2 s of quiet, before the measured burst (which compares the "meeting" activity only).
    if (burst.type === "warmup") {
      const people = tenants.flatMap((t) => t.population.people.filter((p) => p.teams).slice(0, burst.type === "warmup" ? burst.changes : 0).map((person) => ({ t, person })))
      for (const { t, person } of people) {
        yield* t.graph.setPresence(person.graphId, { availability: "Away", activity: "Away" })
        yield* Effect.sleep((1000 * data.tenantCount) / (burst.rate * tenants.length))
      }
      yield* Effect.sleep(2000)
      parentPort!.postMessage({ type: "warmed" } satisfies FromWorker)
      burst = yield* nextMessage
    }
    if (burst.type !== "burst") return
    // Every Teams user of each tenant once; change i of tenant t is number i × tenants + t of the whole burst.
    const changes = tenants.flatMap((t) =>
      t.population.people.filter((p) => p.teams).map((person, i) => ({ tenant: t, person, at: burst.startAt + ((i * data.tenantCount + t.index) * 1000) / burst.rate }))
    ).sort((a, b) => a.at - b.at)
    const graphIdOf = new Map(changes.map((c) => [c.person.pbxGuid, c.person.graphId.toLowerCase()]))
    const sent = new Map<string, number>()
    const added: Array<number> = []
    const addedPostedMs: Array<number> = []
    const latencies: Array<number> = []
    let lastArrivedAt = Number.NaN
    const stop = setPresences.onStamp((stamp) => {
      const at = sent.get(stamp.guid)
      if (at === undefined || stamp.activity !== "meeting") return
      const now = epochNow()
      latencies.push(now - at)
      const posted = posts.sentAt.get(graphIdOf.get(stamp.guid) ?? "")
      if (posted !== undefined) {
        added.push(stamp.at - posted)
        addedPostedMs.push(performance.timeOrigin + posted - burst.startAt)
      }
      sent.delete(stamp.guid)
      lastArrivedAt = now
    })
    const profiler = data.profileDir === undefined ? undefined : yield* Effect.promise(() => startProfile())
    const delay = monitorEventLoopDelay({ resolution: 10 })
    delay.enable()
    const cpuBefore = process.threadCpuUsage()
    posts.start()
    for (const change of changes) {
      const wait = change.at - epochNow()
      if (wait > 0) yield* Effect.sleep(wait)
      sent.set(change.person.pbxGuid, epochNow())
      yield* change.tenant.graph.setPresence(change.person.graphId, { availability: "Busy", activity: "InAMeeting" })
    }
    const issuedEndAt = epochNow()
    // Until every change is at its PBX, or none arrived for 30 s.
    let last = { at: epochNow(), left: sent.size }
    while (sent.size > 0 && epochNow() - last.at < 30_000) {
      yield* Effect.sleep(100)
      if (sent.size !== last.left) last = { at: epochNow(), left: sent.size }
    }
    posts.stop()
    stop()
    delay.disable()
    const cpu = process.threadCpuUsage(cpuBefore)
    if (profiler !== undefined) yield* Effect.promise(() => profiler.stop(join(data.profileDir!, `sim-thread-${threadId}.cpuprofile`)))
    const result: SimWorkerResult = {
      added,
      addedPostedMs,
      changeToSetPresence: latencies,
      webhookAnswers: posts.posts.map((p) => p.answeredAt - p.startedAt),
      slowPosts: posts.posts.filter((p) => p.answeredAt - p.startedAt > 3_000)
        .map((p) => ({ startedMs: performance.timeOrigin + p.startedAt - burst.startAt, tookMs: p.answeredAt - p.startedAt })),
      changes: changes.length,
      arrived: latencies.length,
      issuedEndAt,
      lastArrivedAt,
      eventLoopDelayMs: { p50: round(delay.percentile(50) / 1e6), p99: round(delay.percentile(99) / 1e6), max: round(delay.max / 1e6) },
      cpuMs: round((cpu.user + cpu.system) / 1000),
      cpuSystemMs: round(cpu.system / 1000),
      nice: getPriority(0)
    }
    parentPort!.postMessage({ type: "result", result } satisfies FromWorker)
    yield* nextMessage
  })

/** In a worker thread (not when the bench's main thread imports the types above): serves the bench's messages. */
if (parentPort !== null) {
  const port = parentPort
  const nice = (workerData as SimWorkerData).nice
  // Pid 0 is the calling thread: only this simulator thread is lowered, not the bench's other threads.
  if (nice !== undefined && nice > 0) setPriority(0, nice)
  const messages: Array<ToWorker> = []
  const waiting: Array<(message: ToWorker) => void> = []
  port.on("message", (message: ToWorker) => {
    const waiter = waiting.shift()
    if (waiter !== undefined) waiter(message)
    else messages.push(message)
  })
  const nextMessage = Effect.promise(() =>
    new Promise<ToWorker>((resolve) => {
      const queued = messages.shift()
      if (queued !== undefined) resolve(queued)
      else waiting.push(resolve)
    })
  )
  Effect.runPromise(Effect.scoped(program(workerData as SimWorkerData, nextMessage))).then(() => process.exit(0), (error: unknown) => {
    process.stderr.write(`[bench] simulator thread failed: ${String(error)}\n`)
    process.exit(1)
  })
}
