/**
 * The operators' side of tenants in one process (docs/tenants.md), over real sockets against the simulators: the
 * `tenant` label on every metric, one process-wide `/metrics` and each tenant's own; the tenants' overview behind the
 * provider's password and a tenant's own password opening its page only; the tenants API.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted, Schema } from "effect"
import { get as httpGet } from "node:http"
import { TenantsOverview } from "../../src/tenants/TenantsOverview.ts"
import { TenantSummary } from "../../src/tenants/TenantManagement.ts"
import { activityOf, admin, adminPassword, pbxFor, peopleOf, type SimTenant, simulatedTenant, startTenants, subscriptionsOf } from "./harness.ts"
import { basicAuth, until } from "../support/waiting.ts"

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

  it.live("the overview: one row per tenant behind the admin password; a tenant's own password opens its page only; no secret shown", () =>
    Effect.scoped(Effect.gen(function*() {
      const ownPassword = "t1-own-status-password"
      const { get, port, tenants } = yield* startTenants(["t1", "t2"], {
        extra: { t1: { admin: { password: ownPassword } } },
        process: { security: { refuseAfterFailedLogins: 2, maxLoginDelaySeconds: 1 } }
      })
      yield* Effect.forEach(tenants, (tenant) => pbxFor(tenant, port), { concurrency: 3 })
      const t1 = basicAuth(ownPassword)
      const overviewOf = (auth: string) =>
        Effect.flatMap(get("/api/tenants/status", auth), (r) => Effect.promise(() => r.json())).pipe(
          Effect.flatMap(Schema.decodeUnknownEffect(TenantsOverview)),
          Effect.orDie
        )
      const lights = ["masterPbx", "authentication", "presenceSubscription"] as const
      const overview = yield* until("every tenant green on the overview", Effect.map(overviewOf(admin), (o) =>
        o.tenants.length === 3 && o.tenants.every((t) => t.state === "running" && lights.every((l) => t.lights?.[l].state === "green") &&
            t.counts!.written > 0)
          ? o
          : undefined), 30_000)
      assert.deepStrictEqual(overview.tenants.map((t) => [t.id, t.page]), [["default", "/"], ["t1", "/t/t1/"], ["t2", "/t/t2/"]])
      for (const row of overview.tenants) {
        assert.isAbove(row.counts!.matched, 0)
        assert.isAtMost(row.counts!.written, row.counts!.matched)
      }

      const status = (path: string, auth?: string) => Effect.map(get(path, auth), (r) => r.status)
      // The overview: the admin password only.
      for (const path of ["/tenants/", "/api/tenants/status", "/tenants/status", "/tenants/static/overview.js"]) {
        assert.strictEqual(yield* status(path), 401, path)
        assert.strictEqual(yield* status(path, t1), 401, `${path} with t1's password`)
        assert.strictEqual(yield* status(path, admin), 200, path)
      }
      const page = yield* Effect.flatMap(get("/tenants/", admin), (r) => Effect.promise(() => r.text()))
      assert.include(page, "overview.js")
      // t1's own password: t1's page and JSON; not t2's, not default's. The admin password opens every page.
      assert.strictEqual(yield* status("/t/t1/", t1), 200)
      assert.strictEqual(yield* status("/t/t1/api/status", t1), 200)
      assert.strictEqual(yield* status("/t/t2/", t1), 401)
      assert.strictEqual(yield* status("/", t1), 401)
      for (const path of ["/", "/t/t1/", "/t/t2/api/status"]) assert.strictEqual(yield* status(path, admin), 200, path)

      // No secret on the overview or on a tenant's page.
      const texts = [
        JSON.stringify(yield* overviewOf(admin)),
        page,
        yield* Effect.flatMap(get("/t/t1/api/status", admin), (r) => Effect.promise(() => r.text()))
      ]
      const secrets = [adminPassword, ownPassword, ...tenants.flatMap((t: SimTenant) => [
        t.appPassword,
        Redacted.value(t.population.clientSecret),
        ...t.population.accounts.flatMap((a) => (a.password !== undefined ? [Redacted.value(a.password)] : []))
      ])]
      for (const text of texts) for (const secret of secrets) assert.notInclude(text, secret)

      // Wrong passwords back off per client address behind the front: 127.0.0.2 is refused, 127.0.0.1 is not.
      const fromOther = (auth: string, headers: Record<string, string> = {}) =>
        Effect.callback<number>((resume) => {
          const request = httpGet({ host: "127.0.0.1", port, path: "/t/t1/api/status", localAddress: "127.0.0.2", headers: { authorization: auth, ...headers } }, (r) => {
            r.resume()
            resume(Effect.succeed(r.statusCode ?? 0))
          })
          request.on("error", (error) => resume(Effect.die(error)))
        })
      assert.strictEqual(yield* fromOther(basicAuth("wrong-1")), 401)
      assert.strictEqual(yield* fromOther(basicAuth("wrong-2")), 401)
      assert.strictEqual(yield* fromOther(t1), 429)
      // Naming another address itself does not help: only the front's own header counts.
      assert.strictEqual(yield* fromOther(t1, { "x-connector-client-address": "10.9.9.9" }), 429)
      assert.strictEqual(yield* status("/t/t1/api/status", t1), 200)
    })), 90_000)

  it.live("the tenants API: a broken tenant refused with every problem; one added goes green; removed, its subscriptions are gone", () =>
    Effect.scoped(Effect.gen(function*() {
      const ownPassword = "t1-own-status-password"
      // Eight wrong passwords below: the login backoff's longest delay kept at 1 s (8 s by default) keeps the test short.
      const { port, store, tenants } = yield* startTenants(["t1"], {
        extra: { t1: { admin: { password: ownPassword } } },
        process: { security: { maxLoginDelaySeconds: 1 } }
      })
      yield* Effect.forEach(tenants, (tenant) => pbxFor(tenant, port), { concurrency: 2 })
      const call = (method: string, path: string, auth: string | undefined, body?: unknown) =>
        Effect.promise(async () => {
          const response = await fetch(`http://127.0.0.1:${port}${path}`, {
            method,
            headers: { ...(auth !== undefined ? { authorization: auth } : {}), "content-type": "application/json" },
            ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {})
          })
          const text = await response.text()
          return { status: response.status, text, json: (): unknown => JSON.parse(text) }
        })
      const t2 = yield* simulatedTenant("t2", port)

      // Without the admin password: nothing, whatever the method; a tenant's own password is no admin password.
      for (const [method, path] of [["GET", "/api/tenants"], ["POST", "/api/tenants/t2"], ["PUT", "/api/tenants/t1"], ["DELETE", "/api/tenants/t1"]] as const) {
        const body = method === "GET" ? undefined : t2.config
        assert.strictEqual((yield* call(method, path, basicAuth("wrong"), body)).status, 401, `${method} ${path}`)
        assert.strictEqual((yield* call(method, path, basicAuth(ownPassword), body)).status, 401, `${method} ${path}, t1's password`)
      }
      assert.isTrue((yield* store.tenants.get(t2.id))._tag === "None")
      assert.strictEqual((yield* store.tenants.get(tenants[1]!.id))._tag, "Some")

      // A broken configuration: 400 with every problem at once, nothing stored.
      const { clientId: _clientId, ...withoutClientId } = t2.config
      const broken = { ...withoutClientId, pbx: { masterPbx: "pbx-master" }, http: { port: 1 }, notifications: { mode: "sometimes" } }
      const refused = yield* call("POST", "/api/tenants/t2", admin, broken)
      assert.strictEqual(refused.status, 400, refused.text)
      const problems = (refused.json() as { problems: ReadonlyArray<{ path: string }> }).problems.map((p) => p.path)
      for (const path of ["http", "clientId", "pbx.appPassword", "notifications.mode"]) assert.include(problems, path, refused.text)
      assert.isTrue((yield* store.tenants.get(t2.id))._tag === "None")
      assert.strictEqual((yield* call("GET", "/api/tenants/t2", admin)).status, 404)
      assert.strictEqual((yield* call("POST", "/api/tenants/default", admin, t2.config)).status, 400)
      assert.strictEqual((yield* call("POST", "/api/tenants/Not_An_Id", admin, t2.config)).status, 400)
      assert.strictEqual((yield* call("PUT", "/api/tenants/t9", admin, t2.config)).status, 404)

      // Added through the API: stored, started, green against its simulators.
      const added = yield* call("POST", "/api/tenants/t2", admin, t2.config)
      assert.strictEqual(added.status, 201, added.text)
      const summary = yield* Schema.decodeUnknownEffect(TenantSummary)(added.json())
      assert.deepStrictEqual([summary.id, summary.version, summary.masterPbx], ["t2", 1, (t2.config["pbx"] as { masterPbx: string }).masterPbx])
      assert.strictEqual((yield* call("POST", "/api/tenants/t2", admin, t2.config)).status, 409)
      yield* pbxFor(t2, port)
      const lights = ["masterPbx", "authentication", "presenceSubscription"] as const
      yield* until("t2 green on the overview", Effect.map(call("GET", "/api/tenants/status", admin), (r) => {
        const row = (r.json() as TenantsOverview).tenants.find((t) => t.id === "t2")
        return row !== undefined && lights.every((l) => row.lights?.[l].state === "green") ? row : undefined
      }), 30_000)
      assert.isAbove((yield* until("t2's subscriptions at its Graph", Effect.map(subscriptionsOf(t2), (l) => (l.length > 0 ? l : undefined)))).length, 0)

      // The list: both stored tenants, no secret.
      const list = yield* call("GET", "/api/tenants", admin)
      assert.deepStrictEqual((list.json() as { tenants: ReadonlyArray<{ id: string }> }).tenants.map((t) => t.id), ["t1", "t2"])
      for (const secret of [ownPassword, t2.appPassword, Redacted.value(t2.population.clientSecret), adminPassword]) assert.notInclude(list.text, secret)

      // Updated: version 2, and removed at once, while the update restarts it: stopped, its subscriptions deleted at its
      // Graph tenant whichever connector held them then (removal.test.ts holds each step of that gap), gone from the store.
      const updated = yield* call("PUT", "/api/tenants/t2", admin, t2.config)
      assert.strictEqual(updated.status, 200, updated.text)
      assert.strictEqual((updated.json() as { version: number }).version, 2)
      const removed = yield* call("DELETE", "/api/tenants/t2", admin)
      assert.strictEqual(removed.status, 200, removed.text)
      yield* until("t2's subscriptions deleted at its Graph", Effect.map(subscriptionsOf(t2), (l) => (l.length === 0 ? true : undefined)), 30_000)
      assert.isTrue((yield* store.tenants.get(t2.id))._tag === "None")
      assert.strictEqual((yield* call("DELETE", "/api/tenants/t2", admin)).status, 404)
      yield* until("t2 off the overview", Effect.map(call("GET", "/api/tenants/status", admin), (r) =>
        (r.json() as TenantsOverview).tenants.some((t) => t.id === "t2") ? undefined : true))
    })), 90_000)
})
