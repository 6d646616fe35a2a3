/**
 * Where a Graph POST for a tenant not running here goes first (docs/scaling.md, "Graph notifications on any runner"):
 * the runner that owns the tenant, as the runners' rows say (RunnerRegistry.ts, read every 3 s by each runner) — the
 * live runner listing the tenant with the highest owner epoch — unless that is this runner (the tenant is starting
 * here) or a POST passed to it found no answer in the last `pauseMillis` (a killed or frozen runner whose row is not
 * yet seen as gone). No database statement per POST: the rows are the ones the status page reads anyway.
 */
import type { ClusterView } from "../status/StatusBoard.ts"

/** After a POST passed to a runner found no answer there, POSTs are handed over through the store for this long. */
export const pauseMillis = 5_000

export const makeOwnerRoute = (self: string, view: () => ClusterView | undefined, now: () => number) => {
  const failedAt = new Map<string, number>()
  /** The runner id of `tenant`'s owner when it is another live runner that answered lately, else undefined. */
  const owner = (tenant: string): string | undefined => {
    let best: { readonly runner: string; readonly epoch: number } | undefined
    for (const runner of view()?.runners ?? []) {
      if (!runner.alive) continue
      for (const owned of runner.tenants) {
        if (owned.tenant === tenant && (best === undefined || owned.epoch > best.epoch)) best = { runner: runner.id, epoch: owned.epoch }
      }
    }
    if (best === undefined || best.runner === self) return undefined
    const failed = failedAt.get(best.runner)
    if (failed !== undefined && now() - failed < pauseMillis) return undefined
    failedAt.delete(best.runner)
    return best.runner
  }
  const ownerFailed = (runner: string) => void failedAt.set(runner, now())
  return { owner, ownerFailed }
}
