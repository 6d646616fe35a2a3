/**
 * PBX sockets per tenant (docs/scaling.md, "PBX sockets: per tenant"), on a real cluster: three runner processes on one
 * PostgreSQL in the default mode (`auto`), tenants `alpha` (nothing that needs its owner) and `beta` (PBX → Teams call
 * watching on) from the store. Each tenant's PBX system connects through a front that reaches only one runner that does
 * not own the tenant. Alpha's sockets stay there (its PBX side); beta's are piped to its owner and held by its
 * connector (the owner's row lists them, each tenant's mode is in its owner's row, the owner logged why). Both
 * tenants' master lights are green and every Teams presence reaches both PBX systems. Then alpha is updated with call
 * watching: its PBX side stops, its PBXs reconnect and are piped to its owner, and presences still arrive.
 */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { Effect } from "effect"
import { basicAuth, until } from "../support/waiting.ts"
import {
  adminPassword,
  clusterScene,
  clusterStates,
  owners,
  putTenant,
  runnerId,
  settledOwners,
  simPbx,
  type SimTenant,
  startRunner,
  tcpFront
} from "./harness.ts"

const users = 6
const states = clusterStates

interface RunnerRow {
  readonly runner: string
  readonly tenants: ReadonlyArray<{ readonly tenant: string; readonly sockets?: string }>
  readonly sockets: ReadonlyArray<{ readonly tenant: string; readonly pbx: string; readonly loggedIn: boolean }>
}

describe("cluster: PBX socket mode per tenant", () => {
  it.live("a tenant with call watching has its PBX sockets piped to its owner, another's stay on a non-owner", () =>
    Effect.scoped(Effect.gen(function*() {
      const { env, runners, front, store, sql, tenants: [main, alpha, beta] } = yield* clusterScene(["default", "alpha", "beta"], users, {
        beta: (config) => ({ ...config, pbxToTeams: { enabled: true } })
      })
      runners.push(...yield* Effect.forEach(["r1", "r2", "r3"], (name) => startRunner(env, name, main!, env.databaseUrl, "standard"), { concurrency: 3 }))

      const placed = yield* settledOwners(sql, ["alpha", "beta"])
      const nonOwner = (owner: string) => runners.find((r) => runnerId(r) !== owner)!
      // Each tenant's PBXs reach one runner that does not own the tenant (a load balancer that happened to choose it).
      const alphaVia = nonOwner(placed.alpha)
      const betaVia = nonOwner(placed.beta)
      const alphaPbx = yield* simPbx(alpha!, (yield* tcpFront(() => [alphaVia.httpPort])).port, users)
      const betaPbx = yield* simPbx(beta, (yield* tcpFront(() => [betaVia.httpPort])).port, users)
      for (const [name, pbx] of [["alpha", alphaPbx], ["beta", betaPbx]] as const) {
        yield* until(`${name}'s PBXs logged in`, Effect.map(pbx.status, (all) => (all.every((s) => s.loggedIn) ? true : undefined)), 30_000)
      }

      const rows = sql<{ runner: string; tenants: string; pbx_sockets: string }>`SELECT runner, tenants, pbx_sockets FROM connector_cluster_runners`.pipe(
        Effect.map((list) => list.map((row): RunnerRow => ({ runner: row.runner, tenants: JSON.parse(row.tenants), sockets: JSON.parse(row.pbx_sockets) }))),
        Effect.orDie
      )
      const holders = (all: ReadonlyArray<RunnerRow>, tenant: string) =>
        all.flatMap((row) => row.sockets.filter((s) => s.tenant === tenant && s.loggedIn).map(() => row.runner))
      const modeOf = (all: ReadonlyArray<RunnerRow>, tenant: string) =>
        all.flatMap((row) => row.tenants.filter((t) => t.tenant === tenant).map((t) => t.sockets))[0]
      const pbxCount = (tenant: SimTenant) => tenant.population.pbxs.length
      const settled = yield* until("each tenant's PBX sockets listed where they are held", Effect.map(rows, (all) =>
        holders(all, "alpha").length === pbxCount(alpha!) && holders(all, "beta").length === pbxCount(beta) &&
          modeOf(all, "alpha") !== undefined && modeOf(all, "beta") !== undefined ? all : undefined), 30_000)
      // Alpha's stay on the runner they reached; beta's are held by its owner's connector, piped there by the other runner.
      assert.deepStrictEqual([...new Set(holders(settled, "alpha"))], [runnerId(alphaVia)])
      assert.deepStrictEqual([...new Set(holders(settled, "beta"))], [placed.beta])
      assert.notStrictEqual(runnerId(betaVia), placed.beta)
      assert.strictEqual(modeOf(settled, "alpha"), "any")
      assert.strictEqual(modeOf(settled, "beta"), "owner")
      assert.deepStrictEqual((yield* owners(sql)).get("beta")?.runner, placed.beta, "beta did not move meanwhile")
      // The owner said at the tenant's start which mode it runs in and why.
      const betaOwner = runners.find((r) => runnerId(r) === placed.beta)!
      const log = readFileSync(betaOwner.logFile, "utf8")
      assert.include(log, "tenant beta starts with its PBX sockets piped to its owner and held by its connector (mode owner): pbxToTeams is enabled")
      const alphaOwner = runners.find((r) => runnerId(r) === placed.alpha)!
      assert.include(readFileSync(alphaOwner.logFile, "utf8"), "tenant alpha starts with its PBX sockets on the runners they reach (mode any)")

      // Both masters green on their tenants' status pages.
      const masterLight = (tenant: SimTenant) => Effect.promise(async () => {
        const response = await fetch(`http://127.0.0.1:${front.port}${tenant.pathPrefix}/api/status`, { headers: { authorization: basicAuth(adminPassword) } })
          .catch(() => undefined)
        if (response?.status !== 200) return undefined
        const body = (await response.json()) as { lights: { masterPbx: { state: string } } }
        return body.lights.masterPbx.state === "green" ? true : undefined
      })
      yield* until("alpha's master PBX green", masterLight(alpha!), 30_000)
      yield* until("beta's master PBX green", masterLight(beta), 30_000)

      // Every Teams presence reaches both PBX systems.
      const presencesArrive = (tenant: SimTenant, pbx: typeof alphaPbx, shift: number) =>
        Effect.gen(function*() {
          const pbxUsers = yield* until(`${tenant.id}'s PBX users`, Effect.map(pbx.users, (list) => (list.length > 0 ? list : undefined)))
          const people = tenant.population.people.flatMap((person) => {
            const user = pbxUsers.find((u) => (u.emails ?? []).includes(person.email))
            return person.teams && user !== undefined ? [{ graphId: person.graphId, guid: user.guid }] : []
          })
          assert.isAbove(people.length, 1)
          const stateOf = (i: number) => states[(i + shift) % states.length]!
          yield* Effect.forEach(people, (p, i) => tenant.graph.setPresence(p.graphId, stateOf(i)), { discard: true })
          yield* until(`the presences in ${tenant.id}'s PBXs`, Effect.gen(function*() {
            for (const [i, p] of people.entries()) {
              const activity = (yield* pbx.presence(p.guid)).find((e) => e.contact === "teams:")?.activity
              if (activity !== stateOf(i).pbx) return undefined
            }
            return true
          }), 60_000)
        })
      yield* presencesArrive(alpha!, alphaPbx, 0)
      yield* presencesArrive(beta, betaPbx, 0)
      const name = (id: string) => runners.find((r) => runnerId(r) === id)!.name
      console.log(
        `PBX socket mode per tenant: alpha (any) owned by ${name(placed.alpha)}, sockets on ${alphaVia.name}; ` +
          `beta (owner, pbxToTeams) owned by ${name(placed.beta)}, reached through ${betaVia.name}, sockets on ${name(placed.beta)}`
      )

      // A configuration change flips alpha's mode: updated with call watching, it restarts on its owner, the runner
      // holding its sockets stops its PBX side, and its PBXs reconnect and are piped to the owner's connector.
      const loginsOf = Effect.map(alphaPbx.status, (all) => all.reduce((sum, s) => sum + s.logins, 0))
      const loginsBefore = yield* loginsOf
      const updatedAt = Date.now()
      yield* putTenant(store, { ...alpha!, config: { ...alpha!.config, pbxToTeams: { enabled: true } } })
      const movedTo = yield* until("alpha's PBX sockets held by its owner's connector", Effect.gen(function*() {
        const owner = (yield* owners(sql)).get("alpha")?.runner
        const all = yield* rows
        const held = holders(all, "alpha")
        return owner !== undefined && modeOf(all, "alpha") === "owner" && held.length === pbxCount(alpha!) && held.every((r) => r === owner)
          ? owner
          : undefined
      }), 60_000)
      const moved = Date.now() - updatedAt
      assert.notStrictEqual(movedTo, runnerId(alphaVia), "the sockets reach alpha's owner through the runner they connect to")
      assert.isAbove(yield* loginsOf, loginsBefore, "alpha's PBXs logged in again")
      assert.include(readFileSync(alphaVia.logFile, "utf8"), "PBX side of alpha stopped (its configuration needs its PBX sockets in its owner's connector)")
      yield* until("alpha's master PBX green again", masterLight(alpha!), 30_000)
      yield* presencesArrive(alpha!, alphaPbx, 1)
      console.log(`alpha updated with pbxToTeams: its PBX sockets held by ${name(movedTo)}'s connector ${(moved / 1000).toFixed(1)} s after the update`)
    })), 240_000)
})
