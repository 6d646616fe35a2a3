/**
 * PBX sockets on any runner (docs/scaling.md), on a real cluster: three runner processes on one PostgreSQL, tenant
 * `alpha` from the store. Its PBX system (master and slave) connects through a front that reaches only the two
 * runners that do not own the tenant (the master on one, the slave on the other), so both sockets stay on non-owners: the master's user table reaches the owner's
 * planner through the store, every Teams presence reaches the PBXs through the store's desired commands, and the
 * tenant's status page shows the master PBX connected (from the runners' rows). Then the
 * owner is killed with SIGKILL in the middle of a burst: the PBXs stay connected to their runners (no new login; one of
 * the two runners becomes the owner, the other stays a non-owner holding a socket through the failover), and
 * every PBX user ends in its final Teams presence — what was put but not confirmed when the owner died included —
 * with no older state written after a user's final one (no stale writer, no out-of-order write).
 */
import { assert, describe, it } from "@effect/vitest"
import { readdirSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { basicAuth, until } from "../support/waiting.ts"
import { adminPassword, clusterScene, clusterStates, owners, runnerId, settledOwners, simPbx, startRunner, tcpFront } from "./harness.ts"

const users = 8
const states = clusterStates

interface SocketRow {
  readonly tenant: string
  readonly pbx: string
  readonly loggedIn: boolean
}

describe("cluster: PBX sockets on any runner", () => {
  it.live("a PBX kept on non-owners gets its tenant's presences, through a kill -9 of the owner every unconfirmed one", () =>
    Effect.scoped(Effect.gen(function*() {
      const { env, runners, front, store, sql, tenants: [main, alpha] } = yield* clusterScene(["default", "alpha"], users)
      runners.push(...yield* Effect.forEach(["r1", "r2", "r3"], (name) => startRunner(env, name, main!, env.databaseUrl, "standard"), { concurrency: 3 }))

      const ownerId = (yield* settledOwners(sql, ["alpha"])).alpha
      const owner = runners.find((r) => runnerId(r) === ownerId)!
      const [first, second] = runners.filter((r) => r !== owner)
      // The PBXs reach only the runners that do not own alpha (a load balancer that happened to choose them): both
      // connect to the first, then the slave connects again, to the second.
      let pbxTarget = first!
      const pbxFront = yield* tcpFront(() => [pbxTarget.httpPort])
      const pbx = yield* simPbx(alpha!, pbxFront.port, users)
      yield* until("alpha's PBXs logged in", Effect.map(pbx.status, (all) => (all.every((s) => s.loggedIn) ? true : undefined)), 60_000)
      pbxTarget = second!
      yield* pbx.drop("pbx-slave", { reconnect: false })
      yield* until("alpha's slave gone", Effect.map(pbx.status, (all) => (all.some((s) => s.name === "pbx-slave" && !s.connected) ? true : undefined)))
      yield* pbx.reconnect("pbx-slave")
      const pbxUsers = yield* until("alpha's PBX users", Effect.map(pbx.users, (list) => (list.length > 0 ? list : undefined)))
      const people = alpha!.population.people.flatMap((person) => {
        const user = pbxUsers.find((u) => (u.emails ?? []).includes(person.email))
        return person.teams && user !== undefined ? [{ graphId: person.graphId, guid: user.guid, loc: user.loc }] : []
      })
      assert.isAbove(people.length, 2)
      assert.isTrue(new Set(people.map((p) => p.loc)).size > 1, "users on the master and on the slave")
      const activityOf = (guid: string) => Effect.map(pbx.presence(guid), (entries) => entries.find((e) => e.contact === "teams:")?.activity)
      const allIn = (finalOf: (i: number) => string) =>
        Effect.gen(function*() {
          for (const [i, p] of people.entries()) if ((yield* activityOf(p.guid)) !== finalOf(i)) return undefined
          return true
        })

      // Both PBX sockets on non-owners, as the runners' rows list them.
      const socketsOf = sql<{ runner: string; pbx_sockets: string }>`SELECT runner, pbx_sockets FROM connector_cluster_runners`.pipe(
        Effect.map((rows) => rows.flatMap((row) => (JSON.parse(row.pbx_sockets) as ReadonlyArray<SocketRow>)
          .filter((s) => s.tenant === "alpha" && s.loggedIn)
          .map((s) => ({ runner: row.runner, pbx: s.pbx })))),
        Effect.orDie
      )
      const placed = yield* until("alpha's PBX sockets on two runners", Effect.map(socketsOf, (list) =>
        list.length === 2 && new Set(list.map((s) => s.runner)).size === 2 ? list : undefined), 30_000)
      for (const socket of placed) assert.notStrictEqual(socket.runner, ownerId, `${socket.pbx} is on a runner that does not own alpha`)
      assert.strictEqual((yield* owners(sql)).get("alpha")?.runner, ownerId, "alpha did not move meanwhile")
      const logins = (yield* pbx.status).map((s) => `${s.name}:${s.logins}`).sort()
      // The owner's status page (through either front) shows the master PBX connected, though its socket is elsewhere.
      const masterLight = Effect.promise(async () => {
        const response = await fetch(`http://127.0.0.1:${front.port}/t/alpha/api/status`, { headers: { authorization: basicAuth(adminPassword) } })
          .catch(() => undefined)
        if (response?.status !== 200) return undefined
        const body = (await response.json()) as { lights: { masterPbx: { state: string } }; pbxs: ReadonlyArray<{ pbx: string; state: string }> }
        return body.lights.masterPbx.state === "green" && body.pbxs.filter((p) => p.state === "green").length === 2 ? true : undefined
      })
      yield* until("the master PBX green on alpha's status page", masterLight, 30_000)

      // The owner's presences reach PBXs whose sockets are on other runners (its planner read the user table from the store).
      const started = Date.now()
      yield* Effect.forEach(people, (p, i) => alpha!.graph.setPresence(p.graphId, states[i % states.length]!), { discard: true })
      yield* until("the first presences in alpha's PBXs", allIn((i) => states[i % states.length]!.pbx), 90_000)
      const firstIn = Date.now() - started

      // A burst; the owner is killed after its third round, while the last rounds are in flight.
      const rounds = 6
      let killedAt = 0
      for (let round = 1; round <= rounds; round++) {
        yield* Effect.forEach(people, (p, i) => alpha!.graph.setPresence(p.graphId, states[(round + i) % states.length]!), { discard: true })
        if (round === 3) {
          killedAt = Date.now()
          process.kill(owner.child.pid!, "SIGKILL")
        }
      }
      const finalOf = (i: number) => states[(rounds + i) % states.length]!.pbx
      const newOwner = yield* until("alpha owned again", Effect.map(owners(sql), (now) => {
        const o = now.get("alpha")
        return o !== undefined && o.runner !== ownerId ? o.runner : undefined
      }), 30_000)
      const failover = Date.now() - killedAt
      yield* until("every final presence in alpha's PBXs", allIn(finalOf), 60_000)
      const settled = Date.now() - killedAt

      // The PBXs never logged in again: their sockets stayed on the surviving runners throughout.
      assert.deepStrictEqual((yield* pbx.status).map((s) => `${s.name}:${s.logins}`).sort(), logins)
      const after = yield* socketsOf
      assert.sameDeepMembers(after, placed)
      // No older state after a user's final one: nothing stale was written once the final state was (no second writer).
      const log = yield* pbx.setPresenceLog
      for (const [i, p] of people.entries()) {
        const writes = log.filter((w) => w.guid === p.guid && w.accepted && w.contact === "teams:").map((w) => w.activity)
        const first = writes.indexOf(finalOf(i))
        assert.isAtLeast(first, 0)
        assert.deepStrictEqual(writes.slice(first).filter((a) => a !== finalOf(i)), [], `${p.guid}: ${writes.join(" → ")}`)
      }
      const onNewOwner = placed.filter((s) => s.runner === newOwner).map((s) => s.pbx)
      assert.strictEqual(onNewOwner.length, 1, "one PBX socket stayed on a runner that does not own alpha through the failover")
      console.log(
        `PBX sockets on any runner: alpha owned by ${owner.name}, PBX sockets on ${placed.map((s) => `${s.pbx}@${runners.find((r) => runnerId(r) === s.runner)!.name}`).join(", ")}; ` +
          `first presences in the PBXs ${(firstIn / 1000).toFixed(1)} s after the change; kill -9 of the owner: owned again after ` +
          `${(failover / 1000).toFixed(1)} s (by the runner holding ${onNewOwner.join(", ") || "no socket"}), every final presence ${(settled / 1000).toFixed(1)} s after the kill`
      )
      assert.isBelow(failover, 30_000)
      // Nothing of a tenant's state is in the runners' (shared) data directory: with PostgreSQL it is all in the store.
      const files = readdirSync(join(env.dir, "data"), { recursive: true, withFileTypes: true }).filter((entry) => !entry.isDirectory())
      assert.deepStrictEqual(files.map((entry) => join(entry.parentPath, entry.name)), [])
    })), 300_000)
})
