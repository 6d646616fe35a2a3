/**
 * The state store's contract, second part: desired PBX commands (latest wins, versions only grow, pending/confirm,
 * fencing by owner epoch), their wake-ups, and the tenant changes stream fed by another process's writes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Queue, Stream } from "effect"
import { clearPresence, setPresence } from "../../src/domain/PbxPresence.ts"
import type { DesiredWakeup, DirectoryWakeup, PbxDirectoryRecord, TenantChange } from "../../src/state/StateStore.ts"
import { type Backend, failureOf } from "./contract.ts"
import { keyEnv, newKey, openStore, tenant, tenantConfig } from "./fixtures.ts"

/** A wake-up without the time PostgreSQL's carry (when its NOTIFY was sent: the cluster's `notify` stage). */
export const untimed = (wakeup: DesiredWakeup): DesiredWakeup =>
  wakeup.kind === "changed" ? { kind: "changed", tenant: wakeup.tenant, pbx: wakeup.pbx } : wakeup

const a = tenant("alpha")
const b = tenant("beta")

/** Runs `stream` in the background into a queue the test takes from, one element at a time. */
const collect = <A, E>(stream: Stream.Stream<A, E>) =>
  Effect.gen(function*() {
    const queue = yield* Queue.unbounded<A>()
    yield* stream.pipe(Stream.runForEach((value) => Queue.offer(queue, value)), Effect.forkScoped)
    return queue
  })

export const desiredContract = (backend: Backend) =>
  describe(`state store contract: desired commands and changes (${backend.name})`, () => {
    it.live("latest wins per user, versions only grow, pending until confirmed", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const store = yield* openStore(storage.store(keyEnv(newKey())))
        const { epoch } = yield* store.owners.claim(a, "runner-1")
        assert.strictEqual(epoch, 1)
        const first = yield* store.desired.put(a, epoch, [
          { pbx: "master", guid: "u1", command: setPresence("busy") },
          { pbx: "master", guid: "u2", command: setPresence("away", "back at 3") },
          { pbx: "slave-1", guid: "u3", command: clearPresence },
          { pbx: "master", guid: "u1", command: setPresence("dnd") }
        ])
        assert.deepStrictEqual(first.map((c) => [c.guid, c.command._tag === "Set" ? c.command.activity : "clear"]), [
          ["u1", "dnd"],
          ["u2", "away"],
          ["u3", "clear"]
        ])
        const versions = first.map((c) => c.version)
        assert.isTrue(versions[0]! < versions[1]! && versions[1]! < versions[2]!, `versions grow: ${versions}`)

        const unchanged = yield* store.desired.put(a, epoch, [{ pbx: "master", guid: "u2", command: setPresence("away", "back at 3") }])
        assert.deepStrictEqual(unchanged, [], "an unchanged command gets no new version")
        const newer = yield* store.desired.put(a, epoch, [{ pbx: "master", guid: "u1", command: setPresence("meeting") }])
        assert.isTrue(newer[0]!.version > Math.max(...versions))

        const pending = yield* store.desired.pending(a, "master")
        assert.deepStrictEqual(pending.map((c) => c.guid), ["u2", "u1"], "oldest version first, latest command per user")
        assert.deepStrictEqual(pending[1]!.command, setPresence("meeting"))
        assert.deepStrictEqual((yield* store.desired.pending(a, "master", 1)).map((c) => c.guid), ["u2"])
        assert.deepStrictEqual((yield* store.desired.pending(a, "slave-1")).map((c) => c.guid), ["u3"])
        assert.deepStrictEqual(yield* store.desired.pending(b, "master"), [], "another tenant sees nothing")
        // A sender's bound: only versions above what it already read.
        assert.deepStrictEqual((yield* store.desired.pending(a, "master", 10, undefined, pending[0]!.version)).map((c) => c.guid), ["u1"])
        assert.deepStrictEqual(yield* store.desired.pending(a, "master", 10, undefined, pending[1]!.version), [])

        // The PBX confirms what it applied; a late confirmation of an older version never lowers it.
        yield* store.desired.confirm(a, [{ guid: "u2", version: pending[0]!.version }, { guid: "u1", version: versions[0]! }])
        assert.deepStrictEqual((yield* store.desired.pending(a, "master")).map((c) => c.guid), ["u1"], "u1's newer command is still pending")
        yield* store.desired.confirm(a, [{ guid: "u1", version: pending[1]!.version }])
        yield* store.desired.confirm(a, [{ guid: "u1", version: versions[0]! }])
        assert.deepStrictEqual(yield* store.desired.pending(a, "master"), [])

        // A user that moved to another PBX is pending there; a PBX that lost its state gets everything again.
        yield* store.desired.put(a, epoch, [{ pbx: "slave-1", guid: "u2", command: setPresence("away", "back at 3") }])
        assert.deepStrictEqual((yield* store.desired.pending(a, "slave-1")).map((c) => c.guid), ["u3", "u2"])
        yield* store.desired.resend(a, "master")
        assert.deepStrictEqual((yield* store.desired.pending(a, "master")).map((c) => c.guid), ["u1"])
      }))

    it.live("confirmed: what the PBXs confirmed in its latest version, also for the store opened again (a restart)", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const env = keyEnv(newKey())
        yield* Effect.gen(function*() {
          const store = yield* openStore(storage.store(env))
          const { epoch } = yield* store.owners.claim(a, "runner-1")
          const put = yield* store.desired.put(a, epoch, [
            { pbx: "master", guid: "u1", command: setPresence("busy") },
            { pbx: "slave-1", guid: "u2", command: clearPresence },
            { pbx: "master", guid: "u3", command: setPresence("away") }
          ])
          yield* store.desired.confirm(a, put.filter((c) => c.guid !== "u3").map((c) => ({ guid: c.guid, version: c.version })))
          // u2 changed after its confirmation: the PBX does not hold the newer command.
          yield* store.desired.put(a, epoch, [{ pbx: "slave-1", guid: "u2", command: setPresence("dnd") }])
          const held = yield* store.desired.confirmed(a)
          assert.deepStrictEqual(held.map((c) => [c.guid, c.pbx, c.command]), [["u1", "master", setPresence("busy")]])
        }).pipe(Effect.scoped)
        const reopened = yield* openStore(storage.store(env))
        const held = yield* reopened.desired.confirmed(a)
        assert.deepStrictEqual(held.map((c) => [c.guid, c.pbx, c.command]), [["u1", "master", setPresence("busy")]])
        assert.deepStrictEqual(yield* reopened.desired.confirmed(b), [], "another tenant holds nothing")
      }))

    it.live("a write with a stale owner epoch is refused", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const store = yield* openStore(storage.store(keyEnv(newKey())))
        const first = yield* store.owners.claim(a, "runner-1")
        const second = yield* store.owners.claim(a, "runner-2")
        assert.strictEqual(second.epoch, first.epoch + 1)
        assert.deepStrictEqual(Option.getOrThrow(yield* store.owners.get(a)), { runner: "runner-2", epoch: second.epoch })
        const error = failureOf(yield* Effect.exit(store.desired.put(a, first.epoch, [{ pbx: "master", guid: "u1", command: clearPresence }])))
        assert.strictEqual(error.reason, "Fenced")
        assert.include(error.message, `owner epoch ${first.epoch} is no longer current (now ${second.epoch})`)
        assert.deepStrictEqual(yield* store.desired.pending(a, "master"), [], "the refused write left nothing behind")
        const written = yield* store.desired.put(a, second.epoch, [{ pbx: "master", guid: "u1", command: clearPresence }])
        assert.strictEqual(written.length, 1)
        assert.isTrue(Option.isNone(yield* store.owners.get(b)))
        assert.strictEqual(failureOf(yield* Effect.exit(store.desired.put(b, 1, []))).reason, "Fenced")
      }))

    it.live("a PBX socket lease: a send or confirmation with a stale lease epoch is refused, the new holder's goes through", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const env = keyEnv(newKey())
        // Two runners, each with its own connection to the store; the PBX logs in on the first, then on the second.
        const first = yield* openStore(storage.store(env))
        const second = backend.name === "files" ? first : yield* openStore(storage.store(env))
        const { epoch } = yield* first.owners.claim(a, "runner-1")
        const put = yield* first.desired.put(a, epoch, [
          { pbx: "master", guid: "u1", command: setPresence("busy") },
          { pbx: "slave-1", guid: "u2", command: setPresence("away") }
        ])
        const old = yield* first.desired.lease(a, "master", "runner-1")
        assert.deepStrictEqual(old, { pbx: "master", runner: "runner-1", epoch: 1 })
        assert.deepStrictEqual((yield* first.desired.pending(a, "master", 10, old.epoch)).map((c) => c.guid), ["u1"], "the holder reads")
        const wakeups = yield* collect(first.desired.wakeups)
        assert.deepStrictEqual(yield* Queue.take(wakeups), { kind: "resync" } satisfies DesiredWakeup)
        const taken = yield* second.desired.lease(a, "master", "runner-2")
        assert.deepStrictEqual(taken, { pbx: "master", runner: "runner-2", epoch: 2 })
        assert.deepStrictEqual(untimed(yield* Queue.take(wakeups)), { kind: "changed", tenant: a, pbx: "master" } satisfies DesiredWakeup, "the former holder is woken")

        // The former holder can neither read what to send nor confirm; the refused confirmation changed nothing.
        const stale = failureOf(yield* Effect.exit(first.desired.pending(a, "master", 10, old.epoch)))
        assert.strictEqual(stale.reason, "Fenced")
        assert.include(stale.message, "lease of PBX master's socket with epoch 1 is no longer current (now 2)")
        const refused = failureOf(yield* Effect.exit(first.desired.confirm(a, [{ guid: "u1", version: put[0]!.version }], { pbx: "master", epoch: old.epoch })))
        assert.strictEqual(refused.reason, "Fenced")
        assert.deepStrictEqual((yield* second.desired.pending(a, "master", 10, taken.epoch)).map((c) => c.guid), ["u1"], "still unconfirmed")
        assert.deepStrictEqual(yield* second.desired.pending(a, "master", 10, taken.epoch, put[0]!.version), [], "nothing above the bound")
        const boundStale = failureOf(yield* Effect.exit(first.desired.pending(a, "master", 10, old.epoch, 0)))
        assert.strictEqual(boundStale.reason, "Fenced", "a bounded read is fenced too")
        // A PBX never leased, or a lease of another tenant, is no lease at all.
        assert.strictEqual(failureOf(yield* Effect.exit(first.desired.pending(a, "slave-1", 10, 1))).reason, "Fenced")
        assert.strictEqual(failureOf(yield* Effect.exit(first.desired.pending(b, "master", 10, 2))).reason, "Fenced")

        // The holder confirms its PBX's rows only: a confirmation of another PBX's user is not its to make.
        yield* second.desired.confirm(a, [{ guid: "u1", version: put[0]!.version }, { guid: "u2", version: put[1]!.version }], taken)
        assert.deepStrictEqual(yield* second.desired.pending(a, "master", 10, taken.epoch), [])
        assert.deepStrictEqual((yield* second.desired.pending(a, "slave-1")).map((c) => c.guid), ["u2"])
        assert.strictEqual((yield* first.desired.lease(a, "master", "runner-1")).epoch, 3, "the epoch grows on every take")
      }))

    it.live("latest: each user's row wherever it is keyed, with that PBX's lease holder, in one read", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const store = yield* openStore(storage.store(keyEnv(newKey())))
        const { epoch } = yield* store.owners.claim(a, "runner-1")
        yield* store.desired.put(a, epoch, [
          { pbx: "master", guid: "u1", command: setPresence("busy") },
          { pbx: "slave-1", guid: "u2", command: setPresence("away") }
        ])
        yield* store.desired.lease(a, "master", "runner-1")
        const byGuid = <A extends { readonly guid: string }>(rows: ReadonlyArray<A>) => [...rows].sort((x, y) => x.guid.localeCompare(y.guid))
        const before = byGuid(yield* store.desired.latest(a, ["u1", "u2", "u3", "u1"]))
        assert.deepStrictEqual(before.map((row) => [row.guid, row.pbx, row.command, row.holder]), [
          ["u1", "master", setPresence("busy"), "runner-1"],
          ["u2", "slave-1", setPresence("away"), undefined]
        ], "a user without a row is left out; a PBX never leased has no holder")
        yield* store.desired.lease(a, "master", "runner-2")
        assert.deepStrictEqual((yield* store.desired.latest(a, ["u1"])).map((row) => row.holder), ["runner-2"], "the lease's current holder")
        // The owner keys u1 to the slave with a newer state: the former PBX's holder reads that it is not its own any more.
        const [moved] = yield* store.desired.put(a, epoch, [{ pbx: "slave-1", guid: "u1", command: setPresence("dnd") }])
        const after = yield* store.desired.latest(a, ["u1"])
        assert.deepStrictEqual(after.map((row) => [row.pbx, row.command, row.version, row.holder]), [["slave-1", setPresence("dnd"), moved!.version, undefined]])
        assert.deepStrictEqual(yield* store.desired.latest(b, ["u1"]), [], "another tenant's rows are not read")
        assert.deepStrictEqual(yield* store.desired.latest(a, []), [])
      }))

    it.live("wake-ups name the tenant and PBX that has news", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const store = yield* openStore(storage.store(keyEnv(newKey())))
        const wakeups = yield* collect(store.desired.wakeups)
        assert.deepStrictEqual(yield* Queue.take(wakeups), { kind: "resync" } satisfies DesiredWakeup)
        const { epoch } = yield* store.owners.claim(a, "runner-1")
        yield* store.desired.put(a, epoch, [{ pbx: "slave-1", guid: "u1", command: setPresence("busy") }])
        assert.deepStrictEqual(untimed(yield* Queue.take(wakeups)), { kind: "changed", tenant: a, pbx: "slave-1" } satisfies DesiredWakeup)
        yield* store.desired.resend(a, "master")
        assert.deepStrictEqual(untimed(yield* Queue.take(wakeups)), { kind: "changed", tenant: a, pbx: "master" } satisfies DesiredWakeup)
      }))

    it.live("a published PBX directory: latest wins per tenant and PBX, a wake-up names the tenant, removal forgets it", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const store = yield* openStore(storage.store(keyEnv(newKey())))
        const wakeups = yield* collect(store.directory.wakeups)
        assert.deepStrictEqual(yield* Queue.take(wakeups), { kind: "resync" } satisfies DirectoryWakeup)
        assert.isTrue(Option.isNone(yield* store.directory.load(a, "master")))
        const user = { guid: "g1", h323: "alice", cn: "Alice", dn: "Alice A", e164: "101", emails: ["alice@example.com"], loc: "slave-1", node: "", apps: ["teams"], hide: false }
        const first: PbxDirectoryRecord = { pbx: "master", master: { loggedIn: false }, runner: "r1", publishedAt: 1 }
        yield* store.tenants.put(a, tenantConfig("a1").config)
        assert.isTrue(Option.isNone(yield* store.directory.stamp(a, "master")), "no stamp before the first publish")
        yield* store.directory.publish(a, first)
        assert.deepStrictEqual(yield* Queue.take(wakeups), { kind: "changed", tenant: a } satisfies DirectoryWakeup)
        const firstStamp = yield* store.directory.stamp(a, "master")
        assert.isTrue(Option.isSome(firstStamp))
        assert.deepStrictEqual(yield* store.directory.stamp(a, "master"), firstStamp, "the stamp stays while nothing is published")
        const second: PbxDirectoryRecord = {
          pbx: "master",
          users: [user, { ...user, guid: "g2", groups: ["sales"], h323Email: true }],
          master: { appName: "teams", lics: 20, unlicensed: false, loggedIn: true },
          runner: "r2",
          publishedAt: 2
        }
        yield* store.directory.publish(a, second)
        assert.deepStrictEqual(yield* Queue.take(wakeups), { kind: "changed", tenant: a } satisfies DirectoryWakeup)
        assert.deepStrictEqual(yield* store.directory.load(a, "master"), Option.some(second), "the latest publish wins")
        assert.notDeepEqual(yield* store.directory.stamp(a, "master"), firstStamp, "every publish changes the stamp")
        assert.isTrue(Option.isNone(yield* store.directory.stamp(b, "master")), "stamps per tenant")
        assert.isTrue(Option.isNone(yield* store.directory.load(a, "slave-1")), "per PBX")
        assert.isTrue(Option.isNone(yield* store.directory.load(b, "master")), "per tenant")
        yield* store.tenants.remove(a)
        assert.isTrue(Option.isNone(yield* store.directory.load(a, "master")), "a removed tenant's directory is gone")
      }))

    it.live("the tenant changes stream sees another process add, update and remove a tenant", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const env = keyEnv(newKey())
        const watching = yield* openStore(storage.store(env))
        const writer = yield* openStore(storage.store(env))
        yield* writer.tenants.put(a, tenantConfig("a").config)
        const changes = yield* collect(watching.tenants.changes)
        // What exists when the stream starts arrives as added: after it, the stream is live.
        assert.deepStrictEqual(yield* Queue.take(changes), { kind: "added", id: a, version: 1 } satisfies TenantChange)
        yield* writer.tenants.put(b, tenantConfig("b").config)
        assert.deepStrictEqual(yield* Queue.take(changes), { kind: "added", id: b, version: 1 } satisfies TenantChange)
        yield* writer.tenants.put(b, tenantConfig("b2").config)
        assert.deepStrictEqual(yield* Queue.take(changes), { kind: "updated", id: b, version: 2 } satisfies TenantChange)
        yield* writer.tenants.remove(b)
        assert.deepStrictEqual(yield* Queue.take(changes), { kind: "removed", id: b, version: 2 } satisfies TenantChange)
        yield* watching.tenants.put(b, tenantConfig("b3").config)
        assert.deepStrictEqual(yield* Queue.take(changes), { kind: "added", id: b, version: 1 } satisfies TenantChange)
        assert.isTrue(Option.isNone(yield* Queue.poll(changes)), "nothing else arrived")
      }))
  })
