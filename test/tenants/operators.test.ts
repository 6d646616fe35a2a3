/**
 * The operators' side of tenants in one process (docs/tenants.md), over real sockets against the simulators: the
 * `tenant` label on every metric, one process-wide `/metrics` and each tenant's own.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { activityOf, pbxFor, peopleOf, startTenants } from "./harness.ts"
import { until } from "../support/waiting.ts"

/** The samples of one metric family in an exposition, each with its labels. */
const samples = (text: string, name: string) =>
  text.split("\n").filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `)).map((line) => ({
    labels: Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!])),
    value: Number(line.split(" ").at(-1))
  }))

/** SetPresence requests confirmed by a tenant's PBX, from connector_pbx_writes_total. */
const writesOf = (text: string, tenant: string) =>
  samples(text, "connector_pbx_writes_total").filter((s) => s.labels["tenant"] === tenant && s.labels["result"] === "ok")
    .reduce((sum, s) => sum + s.value, 0)

describe("operators: tenants in one process", () => {
  it.live("every metric carries its tenant: one scrape tells the tenants apart; each tenant's own /metrics only its own", () =>
    Effect.scoped(Effect.gen(function*() {
      const { get, port, tenants } = yield* startTenants(["t1", "t2"])
      const served = yield* Effect.forEach(tenants, (tenant) =>
        Effect.gen(function*() {
          const pbx = yield* pbxFor(tenant, port)
          return { tenant, pbx, people: yield* peopleOf(tenant, pbx) }
        }), { concurrency: 3 })
      const scrape = Effect.flatMap(get("/metrics"), (r) => Effect.promise(() => r.text()))
      // Every tenant has written its people's first presences.
      const first = yield* until("every tenant's first writes", Effect.map(scrape, (text) =>
        served.every((s) => writesOf(text, s.tenant.id) >= s.people.length) ? text : undefined), 30_000)
      const unlabelled = first.split("\n").filter((line) => line.startsWith("connector_") && !line.includes(`tenant="`))
      assert.deepStrictEqual(unlabelled, [], "series without a tenant")
      for (const family of ["connector_pbx_writes_total", "connector_graph_requests_total"]) {
        const tenantsSeen = new Set(samples(first, family).map((s) => s.labels["tenant"]))
        assert.deepStrictEqual([...tenantsSeen].sort(), ["default", "t1", "t2"], family)
      }

      // Only t1's people change: t1's counter grows by their writes, t2's and default's stay where they were.
      const [, t1, t2] = served
      const before = yield* scrape
      yield* Effect.forEach(t1!.people, (p) => t1!.tenant.graph.setPresence(p.graphId, { availability: "Busy", activity: "InAMeeting" }), { discard: true })
      yield* until("t1's change at its PBX", Effect.gen(function*() {
        for (const p of t1!.people) if ((yield* activityOf(t1!.pbx, p.guid)) !== "meeting") return undefined
        return true
      }), 30_000)
      const after = yield* until("t1's writes counted", Effect.map(scrape, (text) =>
        writesOf(text, "t1") >= writesOf(before, "t1") + t1!.people.length ? text : undefined))
      assert.strictEqual(writesOf(after, "t2"), writesOf(before, "t2"))
      assert.strictEqual(writesOf(after, "default"), writesOf(before, "default"))

      // /t/t2/metrics: t2's series only, with the same values as in the process's scrape.
      const own = yield* Effect.flatMap(get(`${t2!.tenant.prefix}/metrics`), (r) => Effect.promise(() => r.text()))
      const lines = own.split("\n").filter((line) => line !== "" && !line.startsWith("#"))
      assert.isAbove(lines.length, 0)
      for (const line of lines) assert.include(line, `tenant="t2"`, line)
      assert.strictEqual(writesOf(own, "t2"), writesOf(after, "t2"))
    })), 90_000)
})
