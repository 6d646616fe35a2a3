/**
 * No split brain: three runners, each reaching PostgreSQL through a proxy of its own; the proxy of the runner owning
 * the most tenants is frozen (no byte passes, nothing is closed: a network partition). That runner says it is not
 * ready, releases its tenants before any other runner takes them (never two owners writing at once), and the tenants'
 * PBXs, reconnecting through the front, end in the presences set after the cut. With the standard timing (lock
 * expiry 15 s), so that the order shown is the design's margin, not a race on a busy machine.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { until } from "../support/waiting.ts"
import { clusterScene, freezableProxy, owners, ownershipLog, type Runner, runnerId, simPbx, startRunner } from "./harness.ts"

const tenantIds = ["default", "alpha", "bravo", "charlie"]
const users = 4

describe("cluster", () => {
  it.live("a runner cut off from PostgreSQL stops, then its tenants move: never two owners at once", () =>
    Effect.scoped(Effect.gen(function*() {
      const { env, runners, front, tenants, store, sql } = yield* clusterScene(tenantIds, users)
      const dbPort = Number(new URL(env.databaseUrl).port)

      const proxies = yield* Effect.forEach([0, 1, 2], () => freezableProxy(dbPort))
      runners.push(...yield* Effect.forEach(["p1", "p2", "p3"], (name, i) => {
        const url = new URL(env.databaseUrl)
        url.port = String(proxies[i]!.port)
        return startRunner(env, name, tenants[0]!, url.toString(), "standard")
      }, { concurrency: 3 }))
      const pbxs = yield* Effect.forEach(tenants, (tenant) => simPbx(tenant, front.port, users))
      const firstPerson = (i: number) =>
        Effect.gen(function*() {
          const pbxUsers = yield* until("the PBX users", Effect.map(pbxs[i]!.users, (list) => (list.length > 0 ? list : undefined)))
          const person = tenants[i]!.population.people.find((p) => p.teams && pbxUsers.some((u) => (u.emails ?? []).includes(p.email)))!
          return { graphId: person.graphId, guid: pbxUsers.find((u) => (u.emails ?? []).includes(person.email))!.guid }
        })
      const people = yield* Effect.forEach(tenants, (_, i) => firstPerson(i))
      const activity = (i: number) =>
        Effect.map(pbxs[i]!.presence(people[i]!.guid), (entries) => entries.find((e) => e.contact === "teams:")?.activity)
      for (const [i, tenant] of tenants.entries()) {
        yield* tenant.graph.setPresence(people[i]!.graphId, { availability: "Busy", activity: "InAMeeting" })
      }
      for (const [i] of tenants.entries()) {
        yield* until(`a first presence in ${tenantIds[i]}`, Effect.map(activity(i), (a) => (a === "meeting" ? a : undefined)), 60_000)
      }

      // Cut the busiest runner off.
      const before = yield* owners(sql)
      const count = new Map<string, number>()
      for (const [, o] of before) count.set(o.runner, (count.get(o.runner) ?? 0) + 1)
      const [busiest] = [...count].sort((a, b) => b[1] - a[1])[0]!
      const index = runners.findIndex((r) => runnerId(r) === busiest)
      const cut = runners[index]!
      const moved = [...before].filter(([, o]) => o.runner === busiest).map(([tenant]) => tenant)
      const cutAt = Date.now()
      proxies[index]!.freeze()

      yield* until("the cut-off runner not ready", Effect.promise(() =>
        fetch(`http://127.0.0.1:${cut.httpPort}/readyz`, { signal: AbortSignal.timeout(5000) }).then((r) => (r.status === 503 ? true : undefined), () => undefined)
      ), 30_000)
      const takenOver = yield* until("the cut-off runner's tenants owned elsewhere", Effect.gen(function*() {
        const now = yield* owners(sql)
        return moved.every((t) => now.get(t)!.runner !== busiest && now.get(t)!.epoch > before.get(t)!.epoch) ? Date.now() - cutAt : undefined
      }), 45_000)

      // A change after the cut reaches every PBX, the moved tenants' through their new owners.
      for (const [i, tenant] of tenants.entries()) {
        yield* tenant.graph.setPresence(people[i]!.graphId, { availability: "Away", activity: "Away" })
      }
      for (const [i] of tenants.entries()) {
        yield* until(`the presence set after the cut in ${tenantIds[i]}`, Effect.map(activity(i), (a) => (a === "away" ? a : undefined)), 45_000)
      }

      // Never two owners: the cut-off runner released each moved tenant before its new owner took it.
      const cutLog = ownershipLog(cut.logFile)
      const after = yield* owners(sql)
      for (const tenant of moved) {
        const newOwner = runners.find((r) => runnerId(r) === after.get(tenant)!.runner)!
        const releasedAt = cutLog.stopping.get(tenant)
        const ownedAt = ownershipLog(newOwner.logFile).owned.get(tenant)
        assert.isDefined(releasedAt, `${cut.name} stopped ${tenant}`)
        assert.isDefined(ownedAt, `${newOwner.name} owned ${tenant}`)
        assert.isBelow(releasedAt!, ownedAt!, `${tenant}: stopped on ${cut.name} before ${newOwner.name} took it`)
        console.log(
          `cluster partition: ${tenant} stopped on the cut-off runner ${((releasedAt! - cutAt) / 1000).toFixed(1)} s after the cut, ` +
            `owned by ${newOwner.name} after ${((ownedAt! - cutAt) / 1000).toFixed(1)} s`
        )
      }
      console.log(`cluster partition: ${moved.length} tenants (${moved.join(", ")}) owned elsewhere ${(takenOver / 1000).toFixed(1)} s after the cut`)
    })), 150_000)
})
