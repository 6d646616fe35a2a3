/** What every bench scenario shares: progress on stderr, one JSON line per scenario on stdout, the targets, waiting. */
import { performance } from "node:perf_hooks"
import { Effect } from "effect"
import { round } from "./stats.ts"

/** The targets. graphSlowMs: Graph counts an answer after 2.9 s as slow (protocols.md §1.6). */
export const TARGETS = { webhookP99Ms: 50, addedLatencyP99Ms: 100, rssMb: 300, initialSyncSeconds: 20, graphSlowMs: 2_900 }

/**
 * The nice value of tenants-50's simulator threads (BENCH_SIM_NICE; tenantSims.ts): 10 unless given. The 50 Graph
 * tenants and 100 PBXs stand for systems that never run on the connector's cores; on the bench's two cores they cost
 * 1.2–1.45 ms of CPU per change at one item per POST (one tenant's simulators: ≈ 0.14 ms at ≈ 39 items per POST), so
 * at the connector's own priority they take its cores and the burst measures them (docs/performance.md, "How the two
 * latency targets of tenants-50 and cluster-3 are read"). `0` runs them at the connector's priority.
 */
export const simulatorNice = (value: string | undefined): number => {
  if (value === undefined || value.trim() === "") return 10
  const nice = Number(value)
  if (!Number.isInteger(nice) || nice < 0 || nice > 19) throw new Error(`BENCH_SIM_NICE must be a whole number from 0 to 19, not ${JSON.stringify(value)}`)
  return nice
}

export const progress = (message: string) => Effect.sync(() => process.stderr.write(`[bench] ${message}\n`))
export const emit = (result: Record<string, unknown>) => Effect.sync(() => process.stdout.write(JSON.stringify(result) + "\n"))
export const seconds = (millis: number) => round(millis / 1000, 2)

/** Waits until `check` holds, re-checking every `everyMs`; fails with `what` after `timeoutMs`. */
export const until = (what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50) =>
  Effect.gen(function*() {
    const deadline = performance.now() + timeoutMs
    while (!(yield* Effect.promise(async () => check()))) {
      if (performance.now() > deadline) return yield* Effect.fail(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`))
      yield* Effect.sleep(everyMs)
    }
  })
