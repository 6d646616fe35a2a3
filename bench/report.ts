/** What every bench scenario shares: progress on stderr, one JSON line per scenario on stdout, the targets, waiting. */
import { performance } from "node:perf_hooks"
import { Effect } from "effect"
import { round } from "./stats.ts"

/** The targets. graphSlowMs: Graph counts an answer after 2.9 s as slow (protocols.md §1.6). */
export const TARGETS = { webhookP99Ms: 50, addedLatencyP99Ms: 100, rssMb: 300, initialSyncSeconds: 20, graphSlowMs: 2_900 }

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
