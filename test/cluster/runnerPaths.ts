/**
 * A cluster runner's own paths over its public port (src/cluster/RunnerProcessRoutes.ts): the overview of the tenants
 * it owns, naming it, behind the admin password; its whole process's `/metrics` (no password, as in one process).
 */
import { assert } from "@effect/vitest"
import type { PgClient } from "@effect/sql-pg"
import { Effect } from "effect"
import { basicAuth, until } from "../support/waiting.ts"
import { adminPassword, owners, type Runner, runnerId } from "./harness.ts"

interface Overview {
  readonly runner?: string
  readonly tenants: ReadonlyArray<{ readonly id: string; readonly page: string; readonly state: string; readonly lights?: { readonly masterPbx: { readonly state: string } } }>
}

const get = (runner: Runner, path: string, authorized: boolean) =>
  Effect.promise(async () => {
    const response = await fetch(`http://127.0.0.1:${runner.httpPort}${path}`, authorized ? { headers: { authorization: basicAuth(adminPassword) } } : {})
    return { status: response.status, body: await response.text() }
  })

/** Each runner's overview lists exactly the tenants the store says it owns, running; `writer`'s owner shows its PBX writes. */
export const runnerPaths = (runners: ReadonlyArray<Runner>, sql: PgClient.PgClient, writer: string) =>
  Effect.gen(function*() {
    for (const runner of runners) {
      for (const path of ["/tenants/", "/api/tenants/status"]) {
        assert.strictEqual((yield* get(runner, path, false)).status, 401, `${runner.name} ${path} without the password`)
      }
      const page = yield* get(runner, "/tenants/", true)
      assert.strictEqual(page.status, 200)
      assert.include(page.body, "overview.js")
      const overview = yield* until(`${runner.name}'s overview of the tenants it owns`, Effect.gen(function*() {
        const answer = yield* get(runner, "/api/tenants/status", true)
        if (answer.status !== 200) return undefined
        const body = JSON.parse(answer.body) as Overview
        const mine = [...(yield* owners(sql))].filter(([, o]) => o.runner === runnerId(runner)).map(([id]) => id).sort()
        const shown = body.tenants.map((t) => t.id).sort()
        return shown.join() === mine.join() && body.tenants.every((t) => t.state === "running") ? body : undefined
      }), 30_000)
      assert.strictEqual(overview.runner, runnerId(runner), "the overview names the runner it is of")
      for (const row of overview.tenants) assert.strictEqual(row.page, row.id === "default" ? "/" : `/t/${row.id}/`)
      const metrics = yield* get(runner, "/metrics", false)
      assert.strictEqual(metrics.status, 200)
      assert.match(metrics.body, /^# (HELP|TYPE) /m)
      if (overview.tenants.some((t) => t.id === writer)) {
        assert.match(metrics.body, new RegExp(`^connector_pbx_writes_total\\{[^}]*tenant="${writer}"[^}]*\\} [1-9]`, "m"), `${runner.name} wrote ${writer}'s presences`)
      }
    }
    const shown = (yield* Effect.forEach(runners, (r) => Effect.map(get(r, "/api/tenants/status", true), (a) => (JSON.parse(a.body) as Overview).tenants.length)))
    console.log(`runners' overviews: ${runners.map((r, i) => `${r.name} ${shown[i]} tenant(s)`).join(", ")}; /metrics per runner served by itself`)
  })
