/**
 * Many tenants in one process (`run` without a cluster, src/tenants/TenantsRun.ts) over real sockets: tenant `default`
 * from the configuration file and the others from the state store (files), each with its own simulated Graph tenant
 * and PBX system (its own App password), all through the one public port. Every tenant's presences reach its own PBX
 * only; its subscriptions name its own `/t/<id>/…` URLs; a PBX logging in on another tenant's path is refused; a
 * notification with one tenant's clientState posted to another's path is rejected and applies nothing; a tenant
 * removed at run time is stopped and its subscriptions deleted.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { freePort, pbxFor, runAll, served as serve, simulatedTenant, subscriptionsOf, tenantIds, until, activityOf, users } from "./tenantsHarness.ts"

/** 20 tenants by default, as issue 14 asks; TENANTS_TEST_COUNT tries others. */
const count = Number(process.env["TENANTS_TEST_COUNT"] ?? 20)

/** connector_notifications_rejected_total of a tenant (its /metrics, through the front), summed over reasons. */
const rejectedAt = (port: number, prefix: string) =>
  Effect.promise(() => fetch(`http://127.0.0.1:${port}${prefix}/metrics`).then((r) => r.text())).pipe(
    Effect.map((text) =>
      text.split("\n").filter((line) => line.startsWith("connector_notifications_rejected_total")).reduce((sum, line) => sum + Number(line.split(" ").at(-1)), 0)
    )
  )

describe("tenants in one process", () => {
  it.live(`${count} tenants: own presences, own PBX, own paths; crossing tenants refused`, () =>
    Effect.scoped(Effect.gen(function*() {
      const port = yield* freePort
      const tenants = yield* Effect.forEach(tenantIds(count), (id) => simulatedTenant(id, port), { concurrency: 4 })
      const started = Date.now()
      const { run, store } = yield* runAll(port, tenants)
      assert.strictEqual(run.port, port)

      const served = yield* Effect.forEach(tenants, (tenant) => serve(tenant, port), { concurrency: 4 })
      for (const s of served) assert.isAbove(s.people.length, 0)

      // Each tenant's presence subscriptions name its own paths.
      for (const s of served) {
        const subs = yield* until(`${s.tenant.id}'s presence subscriptions`, Effect.map(subscriptionsOf(s.tenant), (list) =>
          list.some((x) => x.kind === "presence") ? list : undefined), 30_000)
        for (const sub of subs) assert.strictEqual(sub.notificationUrl, `http://127.0.0.1:${port}${s.tenant.prefix}/graph/notifications`)
      }
      // A different presence per tenant: each arrives at its own PBX, and only there.
      const states = [
        { availability: "Busy", activity: "InAMeeting", pbx: "meeting" },
        { availability: "Away", activity: "Away", pbx: "away" },
        { availability: "DoNotDisturb", activity: "DoNotDisturb", pbx: "dnd" }
      ] as const
      for (const [i, s] of served.entries()) {
        const { availability, activity } = states[i % states.length]!
        yield* Effect.forEach(s.people, (p) => s.tenant.graph.setPresence(p.graphId, { availability, activity }), { discard: true })
      }
      for (const [i, s] of served.entries()) {
        const expected = states[i % states.length]!.pbx
        yield* until(`${s.tenant.id}'s presences in its PBX`, Effect.gen(function*() {
          for (const p of s.people) if ((yield* activityOf(s.pbx, p.guid)) !== expected) return undefined
          return true
        }), 30_000)
      }
      const allUp = Date.now() - started
      // Only its own users: every guid a PBX holds a Teams entry for is one of its own tenant's people.
      for (const s of served) {
        const records = yield* s.pbx.setPresenceLog
        const own = new Set(s.people.map((p) => p.guid))
        assert.isAbove(records.length, 0)
        for (const r of records) assert.isTrue(r.guid !== undefined && own.has(r.guid), `${s.tenant.id}'s PBX got a write for ${r.guid}`)
      }

      // A PBX of tenant t1 on t2's path, with its own password: refused, never logged in.
      const [, a, b] = served
      const stray = yield* pbxFor(a!.tenant, port, b!.tenant.prefix)
      const refused = yield* until("the stray PBX refused", Effect.map(stray.status, (list) =>
        list.some((p) => p.loginsRefused > 0) ? list : undefined))
      assert.isTrue(refused.every((p) => !p.loggedIn))

      // A notification with t1's clientState and subscription posted to t2's path: rejected, nothing applied at t2.
      const subOfA = (yield* subscriptionsOf(a!.tenant)).find((x) => x.kind === "presence" && x.clientState !== null)!
      const before = (yield* b!.pbx.setPresenceLog).length
      const rejectedBefore = yield* rejectedAt(port, b!.tenant.prefix)
      const person = b!.people[0]!
      const response = yield* Effect.promise(() =>
        fetch(`http://127.0.0.1:${port}${b!.tenant.prefix}/graph/notifications`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            value: [{
              subscriptionId: subOfA.id,
              clientState: subOfA.clientState,
              changeType: "updated",
              resource: `communications/presences/${person.graphId}`,
              subscriptionExpirationDateTime: "2099-01-01T00:00:00Z",
              tenantId: b!.tenant.population.tenantId,
              resourceData: { "@odata.type": "#Microsoft.Graph.presence", id: person.graphId, availability: "Offline", activity: "Offline" }
            }]
          })
        })
      )
      // Graph only learns "received" (202, docs/protocol-notes.md); the items are counted as rejected, never queued.
      assert.strictEqual(response.status, 202)
      yield* until("the forged item counted as rejected at b", Effect.map(rejectedAt(port, b!.tenant.prefix), (n) => (n > rejectedBefore ? n : undefined)))
      // The bad POST is answered only after the request was judged: a good change posted after it is applied, the bad one never.
      yield* b!.tenant.graph.setPresence(person.graphId, { availability: "Busy", activity: "InAMeeting" })
      yield* until("b's later change applied", Effect.map(activityOf(b!.pbx, person.guid), (x) => (x === "meeting" ? x : undefined)))
      const after = yield* b!.pbx.setPresenceLog
      for (const r of after.slice(before)) assert.notStrictEqual(r.activity, "", "the rejected Offline was applied")

      // Removed at run time: stopped, its subscriptions deleted at its Graph tenant, its path answers 404.
      const last = served.at(-1)!
      yield* store.tenants.remove(last.tenant.id)
      yield* until(`${last.tenant.id}'s subscriptions deleted`, Effect.map(subscriptionsOf(last.tenant), (list) => (list.length === 0 ? true : undefined)))
      yield* until(`${last.tenant.id}'s path gone`, Effect.promise(() =>
        fetch(`http://127.0.0.1:${port}${last.tenant.prefix}/healthz`).then((r) => (r.status === 404 ? true : undefined))))
      console.log(`tenants in one process: ${count} tenants × ${users} users, every tenant's presences at its PBX ${(allUp / 1000).toFixed(1)} s after start`)
    })), 120_000)
})
