/**
 * cluster-3's per-change attribution of the steady phase: each change's time split where the bench sees it — the Graph
 * simulator's batch window (change → its notification POST starts), the ingress (POST → its answer: the front, the
 * runner, the direct POST or the handoff's commit) and the rest (answer → SetPresence at the PBX: the owner's
 * decryption, flow and put, the wake-up and the socket holder's read and send) — and where the slowest changes were:
 * whether the runner holding the PBX's socket was the tenant's owner (woken at once) or another (woken by NOTIFY), and
 * at which second of the phase they were made (a periodic stall shows as a column).
 */
import { percentile, round } from "./stats.ts"

export interface ChangeTimes {
  readonly tenant: string
  readonly guid: string
  /** When the change was made, ms into the steady phase. */
  readonly at: number
  readonly total: number
  readonly window?: number
  readonly ingress?: number
  readonly rest?: number
}

interface Placement {
  readonly tenant_id: string
  readonly guid: string
  readonly owner: string | null
  readonly holder: string | null
}

const quantiles = (values: ReadonlyArray<number>) =>
  values.length === 0 ? null : { p50: round(percentile(values, 50)), p90: round(percentile(values, 90)), p99: round(percentile(values, 99)) }

const segments = (changes: ReadonlyArray<ChangeTimes>) => ({
  n: changes.length,
  total: quantiles(changes.map((c) => c.total)),
  fromPost: quantiles(changes.flatMap((c) => (c.window === undefined ? [] : [c.total - c.window]))),
  window: quantiles(changes.flatMap((c) => (c.window === undefined ? [] : [c.window]))),
  ingress: quantiles(changes.flatMap((c) => (c.ingress === undefined ? [] : [c.ingress]))),
  rest: quantiles(changes.flatMap((c) => (c.rest === undefined ? [] : [c.rest])))
})

export const perChange = (changes: ReadonlyArray<ChangeTimes>, placement: ReadonlyArray<Placement>, seconds: number) => {
  const where = new Map(placement.map((p) => [`${p.tenant_id}|${p.guid}`, p.owner !== null && p.owner === p.holder ? "owner" : "other"]))
  const local = (c: ChangeTimes) => where.get(`${c.tenant}|${c.guid}`) === "owner"
  const bound = percentile(changes.map((c) => c.total), 95)
  const slow = changes.filter((c) => c.total >= bound)
  const bySecond = (list: ReadonlyArray<ChangeTimes>) => {
    const counts = Array.from({ length: seconds }, () => 0)
    for (const c of list) counts[Math.min(seconds - 1, Math.floor(c.at / 1000))]! += 1
    return counts
  }
  // Which segment is the largest in each slow change.
  const largest = { window: 0, ingress: 0, rest: 0 }
  for (const c of slow) {
    const parts = [["window", c.window ?? 0], ["ingress", c.ingress ?? 0], ["rest", c.rest ?? 0]] as const
    largest[parts.reduce((a, b) => (b[1] > a[1] ? b : a))[0]] += 1
  }
  return {
    measure: "ms per change, seen by the bench: window = change → POST started, fromPost = POST started → SetPresence at the PBX (the added latency), ingress = POST → answered, rest = answered → SetPresence at the PBX; 'owner': the PBX's socket held by the tenant's owner",
    all: segments(changes),
    socketAtOwner: segments(changes.filter(local)),
    socketElsewhere: segments(changes.filter((c) => !local(c))),
    slowest5pct: { from: round(bound), ...segments(slow), atOwner: slow.filter(local).length, largestSegment: largest, bySecond: bySecond(slow) },
    /** Per second of the phase: the changes made in it, their median and slowest total. */
    totalBySecond: Array.from({ length: seconds }, (_, i) => {
      const totals = changes.filter((c) => Math.floor(c.at / 1000) === i).map((c) => c.total)
      return totals.length === 0 ? null : [totals.length, round(percentile(totals, 50)), round(Math.max(...totals))]
    })
  }
}
