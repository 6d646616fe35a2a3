/**
 * cluster-3's slowest changes hop by hop (BENCH_CLUSTER_TRACE=1): the bench's own times of each change (its notification
 * POST started and answered, the SetPresence at the PBX simulator) laid beside each runner's timeline from the probe
 * (bench/probe.ts, BENCH_PROBE_TRACE: notification POSTs arriving, NOTIFYs arriving, late ticks of the event loop, the
 * collector's pauses) and the bench's own late ticks, all in wall-clock ms of the one host. For the slowest changes by
 * added latency: where the time went, and which process was paused or late meanwhile.
 */
import { percentile, round } from "./stats.ts"

export interface TracedChange {
  readonly tenant: string
  readonly guid: string
  readonly postAt: number
  readonly answeredAt: number | undefined
  readonly setAt: number
}

export interface RunnerTrace {
  readonly requests: ReadonlyArray<readonly [at: number, path: string, forwarded: number, answerMs: number]>
  readonly notifies: ReadonlyArray<readonly [arrived: number, databaseAt: number, tenant: string]>
  readonly late: ReadonlyArray<readonly [at: number, lateMs: number, onCpuMs: number, waitingMs: number]>
  readonly gc: ReadonlyArray<readonly [at: number, ms: number, kind: string]>
}

/** Late ticks ([at, ms]: the 10 ms tick due at `at + 10` fired `ms` late) overlapping [from, to]: ms late in it. */
const lateWithin = (late: ReadonlyArray<readonly [number, number, ...Array<unknown>]>, from: number, to: number) =>
  late.reduce((sum, [at, ms]) => sum + Math.max(0, Math.min(to, at + 10 + ms) - Math.max(from, at + 10)), 0)

const gcWithin = (gc: RunnerTrace["gc"], from: number, to: number) =>
  gc.reduce((sum, [at, ms]) => sum + Math.max(0, Math.min(to, at + ms) - Math.max(from, at)), 0)

const pathOf = (tenant: string) => (tenant === "default" ? "/graph/notifications" : `/t/${tenant}/graph/notifications`)

export const slowestHops = (
  changes: ReadonlyArray<TracedChange>,
  runners: ReadonlyArray<{ readonly name: string; readonly id: string; readonly trace: RunnerTrace | undefined }>,
  benchLate: ReadonlyArray<readonly [number, number]>,
  placement: ReadonlyMap<string, { readonly owner: string | null; readonly holder: string | null }>,
  origin: number,
  share = 0.02
) => {
  const added = (c: TracedChange) => c.setAt - c.postAt
  const sorted = [...changes].sort((a, b) => added(b) - added(a))
  const slow = sorted.slice(0, Math.max(1, Math.round(changes.length * share)))
  const nameOf = (id: string | null | undefined) => runners.find((r) => r.id === id)?.name ?? "?"
  const hopsOf = (c: TracedChange) => {
    const path = pathOf(c.tenant)
    const arrivals = runners.flatMap((r) =>
      (r.trace?.requests ?? []).filter(([at, p]) => p === path && at >= c.postAt - 2 && at <= c.setAt).map((q) => ({ runner: r.name, at: q[0], forwarded: q[2] === 1, answerMs: q[3] }))
    ).sort((a, b) => a.at - b.at)
    const front = arrivals.find((a) => !a.forwarded)
    const owner = arrivals.find((a) => a.forwarded) ?? front
    const where = placement.get(`${c.tenant}|${c.guid}`)
    const holder = runners.find((r) => r.id === where?.holder)
    // The put's commit as the database saw it: its NOTIFY's `at` (the first for the tenant after the POST reached the owner).
    const notify = runners.flatMap((r) => (r.trace?.notifies ?? []).filter(([arrived, at, t]) => t === c.tenant && at >= (owner?.at ?? c.postAt) - 2 && arrived <= c.setAt + 50).map((n) => ({ runner: r.name, arrived: n[0], at: n[1] })))
    const putAt = notify.length === 0 ? undefined : Math.min(...notify.map((n) => n.at))
    const atHolder = notify.filter((n) => n.runner === holder?.name && Math.abs(n.at - (putAt ?? 0)) < 0.01)[0]?.arrived
    const ms = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? null : round(b - a))
    const paused = Object.fromEntries([
      ...runners.map((r) => [r.name, r.trace === undefined ? null : [round(lateWithin(r.trace.late, c.postAt, c.setAt)), round(gcWithin(r.trace.gc, c.postAt, c.setAt))]] as const),
      ["bench", [round(lateWithin(benchLate, c.postAt, c.setAt)), null]] as const
    ])
    return {
      atS: round((c.postAt - origin) / 1000),
      tenant: c.tenant,
      addedMs: round(added(c)),
      owner: nameOf(where?.owner),
      holder: holder?.name ?? "?",
      front: front?.runner ?? "?",
      hops: {
        toFront: ms(c.postAt, front?.at),
        forward: front !== undefined && owner !== undefined && owner !== front ? ms(front.at, owner.at) : null,
        ownerAnswer: owner === undefined || owner.answerMs < 0 ? null : owner.answerMs,
        answerBack: owner === undefined || c.answeredAt === undefined ? null : ms(owner.at + owner.answerMs, c.answeredAt),
        ownerToPut: ms(owner?.at, putAt),
        putToHolder: ms(putAt, atHolder),
        toPbx: ms(atHolder ?? putAt, c.setAt)
      },
      // ms each process's event loop was late (ticks late by over 4 ms) and, for the runners, in a collector's pause,
      // while the change was on its way.
      lateAndGcMs: paused
    }
  }
  const traced = slow.map(hopsOf)
  const all = changes.map(hopsOf)
  const median = (key: keyof ReturnType<typeof hopsOf>["hops"], list: ReadonlyArray<ReturnType<typeof hopsOf>>) => {
    const values = list.flatMap((h) => (h.hops[key] === null ? [] : [h.hops[key]!]))
    return values.length === 0 ? null : [round(percentile(values, 50)), round(percentile(values, 90)), round(Math.max(...values))]
  }
  const keys = ["toFront", "forward", "ownerAnswer", "answerBack", "ownerToPut", "putToHolder", "toPbx"] as const
  // Each runner's late ticks over the window: how many, ms late in all, and of that the main thread's ms on a CPU and
  // waiting for one (a turn that worked that long, or a process that waited for a core), and ms in collector pauses.
  const lateTicks = Object.fromEntries(runners.map((r) => {
    const late = r.trace?.late ?? []
    const sum = (i: 1 | 2 | 3, over = 0) => round(late.filter((t) => t[1] > over).reduce((a, t) => a + t[i], 0))
    return [r.name, {
      ticks: late.length,
      over10ms: late.filter((t) => t[1] > 10).length,
      over20ms: late.filter((t) => t[1] > 20).length,
      lateMs: sum(1),
      onCpuMs: sum(2),
      waitingMs: sum(3),
      over10ms_lateOnCpuWaiting: [sum(1, 10), sum(2, 10), sum(3, 10)],
      gcMs: round((r.trace?.gc ?? []).reduce((a, g) => a + g[1], 0))
    }]
  }))
  // Whether the runners' late ticks over 10 ms come in step with a period of 0.4–0.8 s (this machine's kernel DAMON
  // thread samples memory every 0.5 s plus its own work): the period that holds them best and how well (the mean
  // resultant length of their phases: 1 all in step, ≈ 0.15 for 40 ticks at random).
  const ticks = runners.flatMap((r) => (r.trace?.late ?? []).filter((t) => t[1] > 10).map((t) => (t[0] - origin) / 1000))
  const inStep = (period: number) => {
    const phases = ticks.map((t) => ((t % period) / period) * 2 * Math.PI)
    return Math.hypot(phases.reduce((a, p) => a + Math.cos(p), 0), phases.reduce((a, p) => a + Math.sin(p), 0)) / Math.max(1, phases.length)
  }
  const periods = Array.from({ length: 401 }, (_, i) => 0.4 + i / 1000)
  const period = periods.reduce((best, p) => (inStep(p) > inStep(best) ? p : best), periods[0]!)
  return {
    lateTicksInStep: { ticks: ticks.length, periodMs: Math.round(period * 1000), resultant: round(inStep(period), 2) },
    lateTicks,
    benchLate: { ticks: benchLate.length, over10ms: benchLate.filter((t) => t[1] > 10).length, lateMs: round(benchLate.reduce((a, t) => a + t[1], 0)) },
    measure: "the slowest changes by added latency, ms: toFront = POST started at the bench → arrived at the first runner; forward = → at the owner's runner; ownerAnswer = the owner's answer; answerBack = → answer at the bench; ownerToPut = POST at the owner → the put's NOTIFY sent (database clock); putToHolder = → NOTIFY bytes at the PBX socket holder's runner; toPbx = → SetPresence at the PBX simulator; lateAndGcMs = per process [ms its event loop was late, ms in a collector's pause] while the change was on its way",
    hopsAll: Object.fromEntries(keys.map((k) => [k, median(k, all)])),
    hopsSlowest: Object.fromEntries(keys.map((k) => [k, median(k, traced)])),
    slowest: traced
  }
}
