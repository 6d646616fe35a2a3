/**
 * One writer per PBX (docs/scaling.md, "One writer per PBX"), on a real cluster: two runner processes on one
 * PostgreSQL, tenant `alpha` from the store. Its PBX system logs in on the first runner, and while those sockets are
 * still alive the same PBXs (same names, same users: a second simulator of the same system, standing for a PBX whose
 * old socket is not yet seen dead) log in on the second runner. The second login takes each PBX's socket lease: the
 * first runner's next send is refused by the store, it closes its sockets and writes nothing more; every later
 * presence reaches the PBXs through the second runner only, and the store's leases name it.
 */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { Effect, Redacted } from "effect"
import { startPbxSimulator } from "../../src/simulators/pbx/Standalone.ts"
import { until } from "../support/waiting.ts"
import { clusterScene, clusterStates, pbxPassword, type Runner, runnerId, startRunner, tcpFront } from "./harness.ts"

const users = 8
const rounds = clusterStates

/** The runner's log messages (JSON lines). */
const messages = (runner: Runner) =>
  readFileSync(runner.logFile, "utf8").split("\n").filter((line) => line.startsWith("{")).map((line) => String((JSON.parse(line) as { message?: unknown }).message))

describe("cluster: one writer per PBX (socket lease)", () => {
  it.live("a PBX logged in on two runners at once ends with one writer: the later login's runner", () =>
    Effect.scoped(Effect.gen(function*() {
      const { env, runners, sql, tenants: [main, alpha] } = yield* clusterScene(["default", "alpha"], users)
      runners.push(...yield* Effect.forEach(["r1", "r2"], (name) => startRunner(env, name, main!, env.databaseUrl, "standard"), { concurrency: 2 }))
      const [first, second] = runners as [Runner, Runner]
      const ready = (runner: Runner) =>
        Effect.promise(() => fetch(`http://127.0.0.1:${runner.httpPort}/readyz`).then((r) => (r.status === 200 ? true : undefined), () => undefined))
      yield* until("both runners ready", Effect.map(Effect.all([ready(first), ready(second)]), (all) => (all.every(Boolean) ? true : undefined)), 90_000)

      // The PBX system on the first runner; the same PBXs later on the second (each through a front to that runner only).
      const system = (runner: Runner, reconnectDelayMs: number) =>
        Effect.gen(function*() {
          const only = yield* tcpFront(() => [runner.httpPort])
          return yield* startPbxSimulator({
            connect: `ws://127.0.0.1:${only.port}${alpha!.pathPrefix}/pbx`,
            password: Redacted.make(pbxPassword),
            users,
            controlPort: 0,
            reconnectDelayMs
          })
        })
      // Its sockets, once closed by the runner, stay closed for the test (a PBX that moved does not come back there).
      const old = yield* system(first, 600_000)
      const loggedIn = (pbx: typeof old) => Effect.map(pbx.status, (all) => (all.every((s) => s.loggedIn) ? true : undefined))
      yield* until("alpha's PBXs logged in on the first runner", loggedIn(old), 60_000)
      const pbxUsers = yield* until("alpha's PBX users", Effect.map(old.users, (list) => (list.length > 0 ? list : undefined)))
      const people = alpha!.population.people.flatMap((person) => {
        const user = pbxUsers.find((u) => (u.emails ?? []).includes(person.email))
        return person.teams && user !== undefined ? [{ graphId: person.graphId, guid: user.guid }] : []
      })
      assert.isAbove(people.length, 2)
      const allIn = (pbx: typeof old, activity: string) =>
        Effect.gen(function*() {
          for (const p of people) {
            if ((yield* pbx.presence(p.guid)).find((e) => e.contact === "teams:")?.activity !== activity) return undefined
          }
          return true
        })
      const change = (round: (typeof rounds)[number]) => Effect.forEach(people, (p) => alpha!.graph.setPresence(p.graphId, round), { discard: true })
      yield* change(rounds[0])
      yield* until("the first presences through the first runner", allIn(old, rounds[0].pbx), 90_000)

      // The same PBXs log in on the second runner while their sockets on the first are alive.
      const fresh = yield* system(second, 200)
      yield* until("alpha's PBXs logged in on the second runner", loggedIn(fresh), 60_000)
      const closedAt = Date.now()
      yield* until("the first runner closed its sockets of alpha's PBXs", Effect.map(old.status, (all) => (all.every((s) => !s.connected) ? true : undefined)), 30_000)
      const closedAfter = Date.now() - closedAt
      const leases = yield* sql<{ pbx: string; runner: string; epoch: string }>`SELECT pbx, runner, epoch::text AS epoch FROM pbx_lease
        WHERE tenant_id = 'alpha' ORDER BY pbx`.pipe(Effect.orDie)
      assert.deepStrictEqual(leases.map((l) => [l.runner, Number(l.epoch)]), leases.map(() => [runnerId(second), 2]), "each PBX leased twice, now by the second runner")
      assert.strictEqual(leases.length, (yield* fresh.status).length)
      const refused = messages(first).filter((m) => /socket with epoch 1 is no longer current \(now 2\).*closing its socket here/.test(m))
      assert.strictEqual(refused.length, leases.length, refused.join("\n"))

      // Every later change goes out through the second runner only: nothing more on the old sockets.
      const oldWrites = (yield* old.setPresenceLog).length
      yield* change(rounds[1])
      yield* until("the second presences through the second runner", allIn(fresh, rounds[1].pbx), 60_000)
      yield* change(rounds[2])
      yield* until("the third presences through the second runner", allIn(fresh, rounds[2].pbx), 60_000)
      assert.strictEqual((yield* old.setPresenceLog).length, oldWrites, "no write on a socket whose lease was taken")
      assert.isTrue((yield* old.status).every((s) => !s.connected && s.logins === 1), "the old sockets stayed closed")
      assert.isTrue((yield* fresh.status).every((s) => s.connected && s.logins === 1), "the new sockets were never dropped")
      assert.deepStrictEqual(messages(second).filter((m) => m.includes("no longer current")), [], "the second runner was never refused")
      console.log(
        `PBX socket lease: ${leases.length} PBXs logged in on ${first.name}, then on ${second.name}: ${first.name} closed its sockets ` +
          `${(closedAfter / 1000).toFixed(1)} s after the second login; ${oldWrites} writes on the old sockets before, none after`
      )
    })), 240_000)
})
