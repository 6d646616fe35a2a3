/**
 * The state store on a real PostgreSQL (started by the test run, test/support/postgres.globalSetup.ts): the shared
 * contract, plus what only the database has — migrations raced by two processes, the refusal to start without a
 * state key, and the secret columns read directly.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Queue, Redacted, Stream } from "effect"
import { clearPresence, setPresence } from "../../src/domain/PbxPresence.ts"
import { type DesiredWakeup, StateStore, type TenantChange } from "../../src/state/StateStore.ts"
import { newSchemaUrl } from "../support/postgres.ts"
import { type Backend, failureOf } from "./contract.ts"
import { desiredContract, untimed } from "./contract.desired.ts"
import { recordsContract } from "./contract.ts"
import { keyEnv, newKey, openStore, tenant, tenantConfig, withEnv } from "./fixtures.ts"

const client = (url: string) =>
  Layer.build(Layer.fresh(PgClient.layer({ url: Redacted.make(url), maxConnections: 2 }))).pipe(
    Effect.map((context) => Context.get(context, PgClient.PgClient)),
    Effect.orDie
  )

const storeOn = (url: string, env: Record<string, string>) =>
  StateStore.layerPostgres({ url: Redacted.make(url), maxConnections: 4 }).pipe(Layer.provide(withEnv(env)))

const tables = ["tenants", "refresh_tokens", "subscription_state", "certificates", "tenant_owner", "pbx_desired"]

const postgres: Backend = {
  name: "postgres",
  storage: Effect.gen(function*() {
    const url = yield* Effect.promise(newSchemaUrl)
    const sql = yield* client(url)
    return {
      store: (env) => storeOn(url, env),
      raw: Effect.forEach(tables, (table) =>
        sql<{ row: string }>`SELECT row_to_json(t)::text AS row FROM ${sql(table)} t`.pipe(
          Effect.map((rows) => rows.map((r) => r.row).join("\n"))
        )).pipe(Effect.map((parts) => parts.join("\n")), Effect.orDie),
      copyToken: (from, to, account) =>
        sql`UPDATE refresh_tokens SET refresh_token_sealed =
          (SELECT refresh_token_sealed FROM refresh_tokens WHERE tenant_id = ${from} AND account = ${account})
          WHERE tenant_id = ${to} AND account = ${account}`.pipe(Effect.asVoid, Effect.orDie)
    }
  })
}

recordsContract(postgres)
desiredContract(postgres)

/** `wakeups` collected, the first (the LISTEN's resync) taken. */
const collected = Effect.fnUntraced(function*(wakeups: Stream.Stream<DesiredWakeup, unknown>) {
  const queue = yield* Queue.unbounded<DesiredWakeup>()
  yield* wakeups.pipe(Stream.runForEach((w) => Queue.offer(queue, w)), Effect.forkScoped)
  assert.strictEqual((yield* Queue.take(queue)).kind, "resync")
  return queue
})

/** A fresh store whose desired wake-ups for every process and runner-2's are collected, tenant alpha claimed. */
const claimedAndWatched = Effect.gen(function*() {
  const url = yield* Effect.promise(newSchemaUrl)
  const store = yield* openStore(storeOn(url, keyEnv(newKey())))
  const general = yield* collected(store.desired.wakeups)
  const held = yield* collected(store.desired.heldWakeups("runner-2"))
  const wakeups = yield* Queue.unbounded<DesiredWakeup>()
  yield* Effect.forEach([general, held], (queue) => Queue.take(queue).pipe(Effect.flatMap((w) => Queue.offer(wakeups, w)), Effect.forever, Effect.forkScoped))
  const a = tenant("alpha")
  const { epoch } = yield* store.owners.claim(a, "runner-1")
  return { a, epoch, store, wakeups }
})

describe("state store: PostgreSQL only", () => {
  it.live("a lost LISTEN connection is listened again and nothing written meanwhile is missed", () =>
    Effect.gen(function*() {
      const url = yield* Effect.promise(newSchemaUrl)
      const env = keyEnv(newKey())
      const watching = yield* openStore(storeOn(url, env))
      const writer = yield* openStore(storeOn(url, env))
      yield* writer.tenants.put(tenant("alpha"), tenantConfig("a").config)
      const changes = yield* Queue.unbounded<TenantChange>()
      yield* watching.tenants.changes.pipe(Stream.runForEach((c) => Queue.offer(changes, c)), Effect.forkScoped)
      const wakeups = yield* Queue.unbounded<DesiredWakeup>()
      yield* watching.desired.wakeups.pipe(Stream.runForEach((w) => Queue.offer(wakeups, w)), Effect.forkScoped)
      assert.strictEqual((yield* Queue.take(changes)).id, "alpha")
      assert.strictEqual((yield* Queue.take(wakeups)).kind, "resync")

      // The server ends every LISTEN session (as a restart or a failover would), then a tenant is added at once.
      const sql = yield* client(url)
      const ended = yield* sql<{ ended: boolean }>`SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
        WHERE datname = current_database() AND query LIKE 'LISTEN%'`.pipe(Effect.orDie)
      assert.strictEqual(ended.length, 1, "one LISTEN session for the changes and the wake-ups")
      yield* writer.tenants.put(tenant("beta"), tenantConfig("b").config)
      assert.deepStrictEqual(yield* Queue.take(changes), { kind: "added", id: tenant("beta"), version: 1 } satisfies TenantChange)
      assert.deepStrictEqual(yield* Queue.take(wakeups), { kind: "resync" } satisfies DesiredWakeup, "a reconnect asks for a full re-read")
      const { epoch } = yield* writer.owners.claim(tenant("beta"), "runner-1")
      yield* writer.desired.put(tenant("beta"), epoch, [{ pbx: "master", guid: "u1", command: clearPresence }])
      const changed = yield* Queue.take(wakeups)
      assert.deepStrictEqual(untimed(changed), { kind: "changed", tenant: tenant("beta"), pbx: "master" } satisfies DesiredWakeup)
      // PostgreSQL's wake-ups say when their NOTIFY was sent, by the database's clock (the cluster's `notify` stage).
      const at = changed.kind === "changed" ? changed.at : undefined
      assert.isTrue(at !== undefined && Number.isFinite(at) && at > Date.UTC(2024, 0, 1), `the NOTIFY's time in milliseconds since the epoch: ${at}`)
    }))

  it.live("a put's wake-up names, per PBX, the highest version it wrote there; a resend's names none", () =>
    Effect.gen(function*() {
      const { a, epoch, store, wakeups } = yield* claimedAndWatched
      const put = yield* store.desired.put(a, epoch, [
        { pbx: "master", guid: "u1", command: clearPresence },
        { pbx: "slave-1", guid: "u2", command: clearPresence },
        { pbx: "master", guid: "u3", command: clearPresence }
      ])
      const highest = (pbx: string) => Math.max(...put.filter((row) => row.pbx === pbx).map((row) => row.version))
      const named = new Map<string, number | undefined>()
      for (let i = 0; i < 2; i++) {
        const wakeup = yield* Queue.take(wakeups)
        if (wakeup.kind === "changed") named.set(wakeup.pbx, wakeup.version)
      }
      assert.deepStrictEqual(Object.fromEntries(named), { master: highest("master"), "slave-1": highest("slave-1") })
      yield* store.desired.resend(a, "master")
      const resent = yield* Queue.take(wakeups)
      assert.isTrue(resent.kind === "changed" && resent.version === undefined, `a resend is read in any case: ${JSON.stringify(resent)}`)
    }))

  it.live("a put's wake-up carries its rows with the lease it saw when the PBX is leased and they fit, else none", () =>
    Effect.gen(function*() {
      const { a, epoch, store, wakeups } = yield* claimedAndWatched
      const lease = yield* store.desired.lease(a, "master", "runner-2")
      assert.strictEqual((yield* Queue.take(wakeups)).kind, "changed", "the take's own wake-up")
      const pending = yield* store.desired.put(a, epoch, [{ pbx: "master", guid: "u0", command: setPresence("away") }])
      yield* Queue.take(wakeups)
      const put = yield* store.desired.put(a, epoch, [
        { pbx: "master", guid: "u1", command: setPresence("busy", "in a call") },
        { pbx: "slave-1", guid: "u2", command: clearPresence },
        { pbx: "master", guid: "u3", command: clearPresence }
      ])
      const byPbx = new Map<string, Extract<DesiredWakeup, { kind: "changed" }>>()
      for (let i = 0; i < 2; i++) {
        const wakeup = yield* Queue.take(wakeups)
        if (wakeup.kind === "changed") byPbx.set(wakeup.pbx, wakeup)
      }
      // The leased master's NOTIFY: the rows as the put returned them, with the lease and the row it had not confirmed.
      const leased = { runner: "runner-2", epoch: lease.epoch, unread: pending[0]!.version }
      assert.deepStrictEqual(byPbx.get("master")?.put, put.filter((row) => row.pbx === "master").map((row) => ({ ...row, lease: leased })))
      assert.deepStrictEqual(put.filter((row) => row.pbx === "master").map((row) => row.lease), [leased, leased], "as the put's answer")
      assert.isUndefined(byPbx.get("slave-1")?.put, "a PBX nobody holds: whoever takes its lease reads everything")
      // Rows too large for a NOTIFY's payload: the wake-up names the version only, and the holder reads.
      const many = Array.from({ length: 40 }, (_, i) => ({ pbx: "master", guid: `big${i}`, command: setPresence("dnd", "x".repeat(200)) }))
      const large = yield* store.desired.put(a, epoch, many)
      const big = yield* Queue.take(wakeups)
      assert.isTrue(big.kind === "changed" && big.put === undefined && big.version === Math.max(...large.map((row) => row.version)), JSON.stringify(big).slice(0, 300))
    }))

  it.live("a put on a leased PBX wakes its holder's runner only; a take in flight is waited for and woken", () =>
    Effect.gen(function*() {
      const url = yield* Effect.promise(newSchemaUrl)
      const store = yield* openStore(storeOn(url, keyEnv(newKey())))
      const general = yield* collected(store.desired.wakeups)
      const two = yield* collected(store.desired.heldWakeups("runner-2"))
      const three = yield* collected(store.desired.heldWakeups("runner-3"))
      const a = tenant("alpha")
      const { epoch } = yield* store.owners.claim(a, "runner-1")
      const taken = yield* store.desired.lease(a, "master", "runner-2")
      assert.deepStrictEqual(untimed(yield* Queue.take(general)), { kind: "changed", tenant: a, pbx: "master" } satisfies DesiredWakeup, "a take wakes every process")
      const [row] = yield* store.desired.put(a, epoch, [{ pbx: "master", guid: "u1", command: setPresence("busy") }])
      const toHolder = yield* Queue.take(two)
      assert.isTrue(toHolder.kind === "changed" && toHolder.pbx === "master" && toHolder.put?.[0]?.version === row!.version, JSON.stringify(toHolder))
      yield* store.desired.put(a, epoch, [{ pbx: "slave-1", guid: "u2", command: setPresence("away") }])
      const unheld = yield* Queue.take(general)
      assert.isTrue(unheld.kind === "changed" && unheld.pbx === "slave-1", `a PBX nobody holds wakes every process: ${JSON.stringify(unheld)}`)

      // A take of master for runner-3 in flight (its row updated, not committed): the put waits for it and wakes runner-3.
      const sql = yield* client(url)
      const release = yield* Deferred.make<void>()
      const updated = yield* Deferred.make<void>()
      const take = yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`UPDATE pbx_lease SET runner = 'runner-3', epoch = epoch + 1 WHERE tenant_id = ${a} AND pbx = 'master'`
        yield* Deferred.succeed(updated, undefined)
        yield* Deferred.await(release)
      })).pipe(Effect.orDie, Effect.forkScoped)
      yield* Deferred.await(updated)
      const put = yield* store.desired.put(a, epoch, [{ pbx: "master", guid: "u3", command: setPresence("dnd") }]).pipe(Effect.forkScoped)
      yield* Effect.sleep("300 millis")
      assert.isUndefined(put.pollUnsafe(), "the put waits for the take in flight")
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(take)
      const [moved] = yield* Fiber.join(put)
      assert.deepStrictEqual(moved!.lease, { runner: "runner-3", epoch: taken.epoch + 1, unread: row!.version }, "the put saw the take")
      // Runner-3's first wake-up is this put (nothing of runner-2's PBX before it); runner-2's next is none of it.
      const toNew = yield* Queue.take(three)
      assert.isTrue(toNew.kind === "changed" && toNew.put?.[0]?.guid === "u3" && toNew.put[0].lease?.runner === "runner-3", JSON.stringify(toNew))
      yield* store.desired.lease(a, "slave-1", "runner-2")
      yield* store.desired.put(a, epoch, [{ pbx: "slave-1", guid: "u4", command: setPresence("lunch") }])
      const next = yield* Queue.take(two)
      assert.isTrue(next.kind === "changed" && next.pbx === "slave-1", `runner-2 was not woken for master's put: ${JSON.stringify(next)}`)
    }))

  it.live("two processes starting at once run the migrations exactly once", () =>
    Effect.gen(function*() {
      const url = yield* Effect.promise(newSchemaUrl)
      const env = keyEnv(newKey())
      const [one, two] = yield* Effect.all([openStore(storeOn(url, env)), openStore(storeOn(url, env))], { concurrency: 2 })
      assert.strictEqual(one.backend, "postgres")
      assert.strictEqual(two.backend, "postgres")
      const sql = yield* client(url)
      const migrations = yield* sql<{ migration_id: number; name: string }>`SELECT migration_id, name FROM connector_migrations ORDER BY migration_id`.pipe(Effect.orDie)
      assert.deepStrictEqual(migrations.map((m) => [m.migration_id, m.name]), [[1, "initial"], [2, "presence_sessions"], [3, "pbx_directory"], [4, "pbx_lease"]])
      const third = yield* openStore(storeOn(url, env))
      assert.deepStrictEqual(yield* third.tenants.list, [], "a later start finds the schema in place")
    }))

  it.live("refuses to start without a state key, and says how to make one", () =>
    Effect.gen(function*() {
      const url = yield* Effect.promise(newSchemaUrl)
      const error = failureOf(yield* Effect.exit(openStore(storeOn(url, {}))))
      assert.strictEqual(error.reason, "NotConfigured")
      assert.include(error.message, "needs CONNECTOR_STATE_KEY")
      assert.include(error.message, "openssl rand -base64 32")
      const sql = yield* client(url)
      const found = yield* sql`SELECT to_regclass('connector_migrations') AS t`.pipe(Effect.orDie)
      assert.isNull(found[0]!["t"], "nothing was created in the database")
    }))

  it.live("without a database URL it names the setting; a wrong password is reported without the URL's secret", () =>
    Effect.gen(function*() {
      const missing = failureOf(
        yield* Effect.exit(openStore(StateStore.layerPostgres().pipe(Layer.provide(withEnv(keyEnv(newKey()))))))
      )
      assert.strictEqual(missing.reason, "NotConfigured")
      assert.include(missing.message, "CONNECTOR_DATABASE_URL")
      const url = new URL(yield* Effect.promise(newSchemaUrl))
      url.password = "wrong-password-b7f1"
      const refused = failureOf(yield* Effect.exit(openStore(storeOn(url.toString(), keyEnv(newKey())))))
      assert.strictEqual(refused.reason, "Unavailable")
      assert.include(refused.message, `cannot connect to the state database 127.0.0.1:${url.port}${url.pathname}`)
      assert.include(refused.message, "password authentication failed")
      assert.notInclude(refused.message, "wrong-password-b7f1")
    }))
})
