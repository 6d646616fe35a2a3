/**
 * Failover on a real cluster: three runner processes on one PostgreSQL, ten tenants (the configuration file's
 * `default` and nine from the store), each with its simulated Graph tenant and PBX system, all traffic through a TCP
 * front. In the middle of a burst of presence changes the runner owning the most tenants is killed with SIGKILL: its
 * tenants are owned again well within 30 s (the figure is printed), every PBX user ends in its final Teams presence, and
 * each Graph tenant holds exactly one presence subscription per technical account. The same cluster then goes through
 * a rolling restart (the killed runner back first, then each runner stopped with SIGTERM and started again on its ports,
 * one at a time, the next once the cluster has settled) under a steady stream of changes: every PBX user ends in the
 * last presence set, one subscription per account, batches were handed to owners through the store and all of them
 * taken; Graph's judgement of each webhook is printed. One setup for both saves the cluster's start-up;
 * CLUSTER_TEST_ROLLING=0 leaves the rolling part out, CLUSTER_TEST_TENANTS=a,b,… sets the tenants,
 * CLUSTER_TEST_TIMING=fast the shard-lock timing.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import type { PbxSimulatorHandle } from "../../src/simulators/pbx/PbxSimulator.ts"
import { basicAuth, until } from "../support/waiting.ts"
import {
  adminPassword,
  clusterScene,
  clusterStates,
  owners,
  presenceSubscriptions,
  type Runner,
  runnerId,
  simPbx,
  type SimTenant,
  startRunner,
  webhookEndpoints
} from "./harness.ts"

const rolling = process.env["CLUSTER_TEST_ROLLING"] !== "0"
const timing = process.env["CLUSTER_TEST_TIMING"] === "fast" ? "fast" : "standard"
const tenantIds = (process.env["CLUSTER_TEST_TENANTS"] ?? "default,alpha,bravo,charlie,delta,echo,foxtrot,golf,hotel,india").split(",")
const users = 4
const states = clusterStates

interface Served {
  readonly tenant: SimTenant
  readonly pbx: PbxSimulatorHandle
  /** Teams users with a PBX user: graph id → PBX guid. */
  readonly people: ReadonlyArray<{ readonly graphId: string; readonly guid: string }>
}

const activityOf = (served: Served, guid: string) =>
  Effect.map(served.pbx.presence(guid), (entries) => entries.find((e) => e.contact === "teams:")?.activity)

interface ClusterOnPage {
  readonly cluster?: {
    readonly runners: ReadonlyArray<{
      readonly id: string
      readonly alive: boolean
      readonly tenants: ReadonlyArray<{ readonly tenant: string }>
      readonly pbxSockets: ReadonlyArray<{ readonly tenant: string; readonly master: boolean; readonly loggedIn: boolean }>
    }>
  }
}

/** A tenant's status snapshot through the front, or undefined while it does not answer 200. */
const statusOf = (frontPort: number, tenant: SimTenant) =>
  Effect.promise(async () => {
    const response = await fetch(`http://127.0.0.1:${frontPort}${tenant.pathPrefix}/api/status`, { headers: { authorization: basicAuth(adminPassword) } })
      .catch(() => undefined)
    return response?.status === 200 ? ((await response.json()) as ClusterOnPage) : undefined
  })

describe("cluster", () => {
  it.live(`kill -9 of the runner owning the most tenants: owned again within 30 s, final presences, one subscription per account${rolling ? "; then a rolling restart under load loses no final state" : ""}`, () =>
    Effect.scoped(Effect.gen(function*() {
      const { env, runners, front, tenants, store, sql } = yield* clusterScene(tenantIds, users)

      const started = Date.now()
      // The default shard-lock timing: `fast` loses locks on this shared machine under load (docs/scaling.md).
      runners.push(...yield* Effect.forEach(["r1", "r2", "r3"], (name) => startRunner(env, name, tenants[0]!, env.databaseUrl, timing), { concurrency: 3 }))
      const served: Array<Served> = yield* Effect.forEach(tenants, (tenant) =>
        Effect.gen(function*() {
          const pbx = yield* simPbx(tenant, front.port, users)
          const pbxUsers = yield* until(`the PBX users of ${tenant.id}`, Effect.map(pbx.users, (list) => (list.length > 0 ? list : undefined)))
          const people = tenant.population.people.flatMap((person) => {
            const user = pbxUsers.find((u) => (u.emails ?? []).includes(person.email))
            return person.teams && user !== undefined ? [{ graphId: person.graphId, guid: user.guid }] : []
          })
          return { tenant, pbx, people }
        }))

      // Every tenant runs: a first presence reaches each one's PBX.
      for (const s of served) {
        assert.isAbove(s.people.length, 0)
        yield* s.tenant.graph.setPresence(s.people[0]!.graphId, { availability: "Busy", activity: "InAMeeting" })
      }
      for (const s of served) {
        yield* until(`a first presence in ${s.tenant.id}'s PBX`, Effect.map(activityOf(s, s.people[0]!.guid), (a) => (a === "meeting" ? a : undefined)), 60_000)
      }
      const allUp = Date.now() - started

      // The status page of every tenant, through the front, shows the cluster: each tenant owned by exactly one live
      // runner (the one the owner records name) and its master PBX's socket on one live runner; /cluster/status wants the password.
      for (const s of served) {
        yield* until(`the cluster on ${s.tenant.id}'s status page`, Effect.gen(function*() {
          // The owner records as they are now (a tenant may move while a loaded machine renews shard locks late).
          const ownersNow = yield* owners(sql)
          const status = yield* statusOf(front.port, s.tenant)
          const runnersView = status?.cluster?.runners.filter((r) => r.alive) ?? []
          if (runnersView.length !== 3) return undefined
          for (const [tenant, owner] of ownersNow) {
            const holders = runnersView.filter((r) => r.tenants.some((t) => t.tenant === tenant))
            if (holders.length !== 1 || holders[0]!.id !== owner.runner) return undefined
            // The master's socket stays on whichever runner it reached (docs/scaling.md): on exactly one live runner.
            if (runnersView.filter((r) => r.pbxSockets.some((p) => p.tenant === tenant && p.master && p.loggedIn)).length !== 1) return undefined
          }
          return true
        }), 60_000)
      }
      const clusterStatus = `http://127.0.0.1:${front.port}/cluster/status`
      assert.strictEqual((yield* Effect.promise(() => fetch(clusterStatus))).status, 401)
      const clusterJson = yield* Effect.promise(() =>
        fetch(clusterStatus, { headers: { authorization: basicAuth(adminPassword) } }).then((r) => r.json() as Promise<{ cluster: ReadonlyArray<{ id: string }> }>)
      )
      assert.sameMembers(clusterJson.cluster.map((r) => r.id), runners.map(runnerId))

      // The burst; the busiest runner is killed after its second round.
      let victim: Runner | undefined
      let moved: ReadonlyArray<string> = []
      let killedAt = 0
      const rounds = 5
      for (let round = 0; round < rounds; round++) {
        for (const s of served) {
          yield* Effect.forEach(s.people, (p, i) => s.tenant.graph.setPresence(p.graphId, states[(round + i) % states.length]!), { discard: true })
        }
        if (round === 2) {
          const before = yield* owners(sql)
          const count = new Map<string, number>()
          for (const [, o] of before) count.set(o.runner, (count.get(o.runner) ?? 0) + 1)
          const [busiest] = [...count].sort((a, b) => b[1] - a[1])[0]!
          victim = runners.find((r) => runnerId(r) === busiest)!
          moved = [...before].filter(([, o]) => o.runner === busiest).map(([tenant]) => tenant)
          killedAt = Date.now()
          process.kill(victim.child.pid!, "SIGKILL")
        }
      }
      assert.isDefined(victim)
      const victimId = runnerId(victim!)
      const failover = yield* until("the killed runner's tenants owned again", Effect.gen(function*() {
        const now = yield* owners(sql)
        return moved.every((tenant) => now.get(tenant)!.runner !== victimId) ? Date.now() - killedAt : undefined
      }), 30_000)

      // Every PBX user ends in its final presence, on whichever runner its PBX reconnected to.
      const finalOf = (i: number) => states[(rounds - 1 + i) % states.length]!.pbx
      for (const s of served) {
        yield* until(`the final presences in ${s.tenant.id}'s PBX`, Effect.gen(function*() {
          for (const [i, p] of s.people.entries()) if ((yield* activityOf(s, p.guid)) !== finalOf(i)) return undefined
          return true
        }), 45_000)
      }
      const settled = Date.now() - killedAt

      // Exactly one presence subscription per technical account in every Graph tenant: none orphaned, none doubled.
      for (const s of served) {
        const perAccount = yield* until(`one presence subscription per account in ${s.tenant.id}`, Effect.map(presenceSubscriptions(s.tenant.graph), (map) =>
          map.size > 0 && [...map.values()].every((n) => n === 1) ? map : undefined), 30_000)
        assert.strictEqual(perAccount.size, s.tenant.population.accounts.length)
      }
      const after = yield* owners(sql)
      for (const tenant of moved) assert.notStrictEqual(after.get(tenant)!.runner, victimId)

      console.log(
        `cluster failover: ${tenantIds.length} tenants, 3 runners; all running ${(allUp / 1000).toFixed(1)} s after start; ` +
          `kill -9 of ${victim!.name} (owner of ${moved.length}: ${moved.join(", ")}); owned again after ${(failover / 1000).toFixed(1)} s; ` +
          `every final presence in the PBXs ${(settled / 1000).toFixed(1)} s after the kill`
      )
      assert.isBelow(failover, 30_000)

      if (!rolling) return
      // Rolling restart under load, on the same cluster: the killed runner comes back, then each runner in turn is
      // stopped (SIGTERM: it hands its tenants over) and started again on its ports, the next one only once it is ready.
      // A steady stream of changes runs throughout; every PBX user ends in the last presence set for it.
      const last = new Map<string, { readonly served: Served; readonly guid: string; readonly pbx: string }>()
      let changes = 0
      const load = yield* Effect.gen(function*() {
        while (true) {
          const s = served[changes % served.length]!
          const i = Math.floor(changes / served.length) % s.people.length
          const state = states[(changes + i) % states.length]!
          yield* s.tenant.graph.setPresence(s.people[i]!.graphId, state)
          last.set(`${s.tenant.id}/${s.people[i]!.guid}`, { served: s, guid: s.people[i]!.guid, pbx: state.pbx })
          changes++
          // 20 changes/s over ten tenants: two per tenant and second, as with five tenants at 10/s.
          yield* Effect.sleep("50 millis")
        }
      }).pipe(Effect.forkScoped)
      const rollingStart = Date.now()
      const restart = (index: number) =>
        Effect.gen(function*() {
          const old = runners[index]!
          if (old.child.exitCode === null && old.child.signalCode === null) {
            process.kill(old.child.pid!, "SIGTERM")
            yield* Effect.promise(() => old.exited)
          }
          const next = yield* startRunner(env, old.name, tenants[0]!, env.databaseUrl, timing, old)
          runners[index] = next
          yield* until(`${next.name} ready again`, Effect.promise(() =>
            fetch(`http://127.0.0.1:${next.httpPort}/readyz`).then((r) => (r.status === 200 ? true : undefined), () => undefined)
          ), 45_000)
          // As an operator would: the next runner only once the cluster has settled — the runner started again owns its
          // share, and every tenant is owned by a running runner and serves its page.
          yield* until(`the cluster settled after ${next.name} started again`, Effect.gen(function*() {
            const now = yield* owners(sql)
            const live = new Set(runners.map(runnerId))
            if (![...now.values()].some((o) => o.runner === runnerId(next))) return undefined
            if (![...now.values()].every((o) => live.has(o.runner))) return undefined
            for (const s of served) if ((yield* statusOf(front.port, s.tenant)) === undefined) return undefined
            return true
          }), 60_000)
        })
      const victimIndex = runners.indexOf(victim!)
      yield* restart(victimIndex)
      for (const index of [0, 1, 2].filter((i) => i !== victimIndex)) yield* restart(index)
      yield* Fiber.interrupt(load)
      const rolled = Date.now() - rollingStart
      const wrong = Effect.filter([...last.values()], ({ served: s, guid, pbx }) => Effect.map(activityOf(s, guid), (a) => a !== pbx))
      const settledAll = yield* until("every PBX user in its last presence after the rolling restart", Effect.map(wrong, (list) => (list.length === 0 ? true : undefined)), 45_000).pipe(
        Effect.catchDefect(() => Effect.succeed(false))
      )
      if (!settledAll) {
        const left = yield* wrong
        const lines = yield* Effect.forEach(left, ({ served: s, guid, pbx }) =>
          Effect.map(activityOf(s, guid), (a) => `${s.tenant.id}/${guid}: wants ${pbx}, shows ${a}`))
        const first = left[0]!
        const page = yield* Effect.promise(() =>
          fetch(`http://127.0.0.1:${front.port}${first.served.tenant.pathPrefix}/api/status`, { headers: { authorization: basicAuth(adminPassword) } })
            .then((r) => r.json() as Promise<{ users: ReadonlyArray<{ pbxGuid: string; activity: string; written: string }> }>)
        )
        const row = page.users.find((u) => u.pbxGuid === first.guid)
        const counters = yield* Effect.promise(() => fetch(`${first.served.tenant.graph.url}/_sim/subscriptions`).then((r) => r.json() as Promise<{ endpoints: unknown }>).then((b) => JSON.stringify(b.endpoints)))
        assert.fail(`after the rolling restart (logs in ${env.dir}): ${lines.join("; ")}; the page of ${first.served.tenant.id}: ${JSON.stringify(row)}; Graph: ${counters}`)
      }
      const rollingSettled = Date.now() - rollingStart
      for (const s of served) {
        const perAccount = yield* until(`one presence subscription per account in ${s.tenant.id} after the rolling restart`, Effect.map(presenceSubscriptions(s.tenant.graph), (map) =>
          map.size > 0 && [...map.values()].every((n) => n === 1) ? map : undefined), 30_000)
        assert.strictEqual(perAccount.size, s.tenant.population.accounts.length)
      }
      // How Graph judged the webhooks (answers slower than 2.9 s; ≥ 10 % of them in 10 min delays an endpoint, ≥ 15 %
      // drops it): reported, since on this shared machine a runner starting up can slow every answer for a few seconds;
      // what counts — no final state lost — is asserted above.
      const endpoints = (yield* Effect.forEach(served, (s) => webhookEndpoints(s.tenant.graph))).flat()
      const judged = endpoints.filter((e) => e.state !== "ok").map((e) => `${e.url.replace(/^.*?(\/t\/[^/]+)?\/graph.*$/, "$1") || "default"} ${e.state}`)
      const posts = endpoints.reduce((n, e) => n + e.posts, 0)
      const slow = endpoints.reduce((n, e) => n + e.slow, 0)
      const failures = endpoints.reduce((n, e) => n + e.failures, 0)
      // What runners took for tenants they did not serve went through the store, and every batch of it was taken.
      const handedOver = yield* sql<{ n: string }>`SELECT (CASE WHEN is_called THEN last_value ELSE 0 END)::text AS n FROM connector_graph_handoff_id_seq`.pipe(
        Effect.map((rows) => Number(rows[0]!.n)),
        Effect.orDie
      )
      // A POST for a tenant owned elsewhere goes to the owner's runner while it answers; when the owner is killed or
      // stops (the kill, the rolling restart), the POSTs that reach the other runners find no answer there and are
      // handed over through the store.
      assert.isAbove(handedOver, 0)
      yield* until("every handed-over batch taken by its owner", sql<{ n: string }>`SELECT count(*)::text AS n FROM connector_graph_handoff`.pipe(
        Effect.map((rows) => (rows[0]!.n === "0" ? true : undefined)),
        Effect.orDie
      ), 15_000)
      const finalOwners = yield* owners(sql)
      assert.sameMembers([...finalOwners.keys()], [...tenantIds])
      for (const [, o] of finalOwners) assert.include(runners.map(runnerId), o.runner)
      assert.isAbove(changes, 100)
      console.log(
        `cluster rolling restart: 3 runners restarted one by one in ${(rolled / 1000).toFixed(1)} s under ${changes} changes; ` +
          `every last presence (${last.size} users) in the PBXs ${(rollingSettled / 1000).toFixed(1)} s after the first stop; ` +
          `Graph's webhook POSTs over the whole test: ${posts}, ${slow} slower than 2.9 s, ${failures} not answered 2xx, ` +
          `${handedOver} handed to the owner through the store; endpoints not ok at the end: ${judged.length === 0 ? "none" : judged.join(", ")}`
      )
    })), 420_000)
})
