/**
 * `pbx.licensing: appLicence` in a cluster (docs/scaling.md, "PBX sockets: per tenant"), on a real cluster: two runner
 * processes on one PostgreSQL, tenant `gamma` from the store with appLicence. Its PBX system reaches only the runner
 * that does not own it; the socket is piped to the owner and held by the tenant's connector there, which checks every
 * user's App licence (PbxAdminApi CheckAppLic) on the master's connection: the licensed users get their Teams
 * presences, the one without the licence gets none, and the status page counts them. Then each runner's own paths
 * (docs/operations.md, "Cluster runners"): its overview of the tenants it owns, naming it, behind the admin password,
 * and its whole process's `/metrics` — the gamma owner's with gamma's PBX writes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { basicAuth, until } from "../support/waiting.ts"
import { runnerPaths } from "./runnerPaths.ts"
import { adminPassword, clusterScene, runnerId, settledOwners, simPbx, startRunner, tcpFront } from "./harness.ts"

const users = 6
const busy = { availability: "Busy", activity: "InAMeeting", pbx: "meeting" } as const

interface Licensing {
  readonly mode: string
  readonly licensed: number
  readonly unlicensed: number
  readonly unknown: number
}

describe("cluster: App licences (pbx.licensing appLicence); each runner's overview and metrics", () => {
  it.live("a tenant with appLicence checks its users' licences on its owner's PBX socket and writes the licensed users' presences", () =>
    Effect.scoped(Effect.gen(function*() {
      const { env, front, runners, sql, tenants: [main, gamma] } = yield* clusterScene(["default", "gamma"], users, {
        gamma: (config) => ({ ...config, pbx: { ...(config["pbx"] as Record<string, unknown>), licensing: "appLicence" } })
      })
      runners.push(...yield* Effect.forEach(["r1", "r2"], (name) => startRunner(env, name, main!, env.databaseUrl, "standard"), { concurrency: 2 }))

      const ownerId = (yield* settledOwners(sql, ["gamma"])).gamma
      const nonOwner = runners.find((r) => runnerId(r) !== ownerId)!

      // The PBX system, set up before it reaches any runner: PbxAdminApi on the master, the licence for all users but one.
      let targets: ReadonlyArray<number> = []
      const pbx = yield* simPbx(gamma, (yield* tcpFront(() => targets)).port, users)
      const master = gamma.population.pbxs.find((p) => p.master)!.name
      yield* pbx.setApis(master, ["PbxApi", "PbxTableUsers", "PbxAdminApi"])
      const pbxUsers = yield* pbx.users
      const people = gamma.population.people.flatMap((person) => {
        const user = pbxUsers.find((u) => (u.emails ?? []).includes(person.email))
        return person.teams && user !== undefined ? [{ graphId: person.graphId, guid: user.guid }] : []
      })
      assert.isAbove(people.length, 2)
      const [withoutLicence, ...licensed] = people
      for (const p of licensed) yield* pbx.setAppLicences(p.guid, [`App(${gamma.population.appName})`])
      targets = [nonOwner.httpPort]
      yield* until("gamma's PBXs logged in", Effect.map(pbx.status, (all) => (all.every((s) => s.loggedIn) ? true : undefined)), 60_000)

      // The sockets are held by the owner's connector (mode owner), though they reached the other runner.
      const holders = sql<{ runner: string; pbx_sockets: string }>`SELECT runner, pbx_sockets FROM connector_cluster_runners`.pipe(
        Effect.map((rows) => rows.flatMap((row) => (JSON.parse(row.pbx_sockets) as ReadonlyArray<{ tenant: string; loggedIn: boolean }>)
          .filter((s) => s.tenant === "gamma" && s.loggedIn).map(() => row.runner))),
        Effect.orDie
      )
      const held = yield* until("gamma's PBX sockets listed", Effect.map(holders, (list) => (list.length === gamma.population.pbxs.length ? list : undefined)), 30_000)
      assert.deepStrictEqual([...new Set(held)], [ownerId])

      // The owner's licence check: every user asked on the master's connection, the counts on the status page.
      const licensing = Effect.promise(async () => {
        const response = await fetch(`http://127.0.0.1:${front.port}/t/gamma/api/status`, { headers: { authorization: basicAuth(adminPassword) } })
          .catch(() => undefined)
        if (response?.status !== 200) return undefined
        const body = (await response.json()) as { licensing?: Licensing }
        return body.licensing?.mode === "appLicence" && body.licensing.unknown === 0 && body.licensing.licensed > 0 ? body.licensing : undefined
      })
      const counted = yield* until("gamma's licences checked", licensing, 60_000)
      assert.strictEqual(counted.licensed, licensed.length)
      assert.isAtLeast(counted.unlicensed, 1)
      const checks = pbx.peek.checkAppLicLog()
      assert.isAtLeast(checks.length, people.length)
      assert.deepStrictEqual([...new Set(checks.map((c) => c.pbx))], [master], "checked on the master's connection")

      // Presences: written for the licensed users, never for the one without the licence.
      yield* Effect.forEach(people, (p) => gamma.graph.setPresence(p.graphId, busy), { discard: true })
      const activityOf = (guid: string) => Effect.map(pbx.presence(guid), (entries) => entries.find((e) => e.contact === "teams:")?.activity)
      yield* until("the licensed users' presences in gamma's PBXs", Effect.gen(function*() {
        for (const p of licensed) if ((yield* activityOf(p.guid)) !== busy.pbx) return undefined
        return true
      }), 60_000)
      const log = yield* pbx.setPresenceLog
      assert.deepStrictEqual(log.filter((w) => w.guid === withoutLicence!.guid && w.contact === "teams:" && w.activity !== ""), [], "no presence for the user without the licence")
      console.log(
        `appLicence in a cluster: gamma owned by ${runners.find((r) => runnerId(r) === ownerId)!.name}, its PBXs reached ${nonOwner.name}; ` +
          `${checks.length} CheckAppLic on ${master}; ${counted.licensed} licensed, ${counted.unlicensed} not; presences for the licensed users only`
      )
      yield* runnerPaths(runners, sql, "gamma")
    })), 240_000)
})
