/**
 * The file store keeps what the PBXs confirmed in one file per tenant (src/state/files/ConfirmedFile.ts): written on a
 * debounce after changes and when the store closes, read back when the tenant's commands are first touched, and a file
 * that cannot be read only costs writing every user again.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Queue, Scope } from "effect"
import { TestClock } from "effect/testing"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { clearPresence, setPresence } from "../../src/domain/PbxPresence.ts"
import { keepConfirmedInFiles } from "../../src/state/files/ConfirmedFile.ts"
import { makeMemoryDesired } from "../../src/state/memory/MemoryDesired.ts"
import type { TenantId } from "../../src/state/Records.ts"
import { tempDir } from "../support/tempDir.ts"
import { tenant } from "./fixtures.ts"

const a = tenant("alpha")

/** A memory store with its confirmed commands kept in `dir`; `saved` completes at the first file written. */
const open = (dir: string) =>
  Effect.gen(function*() {
    const memory = yield* makeMemoryDesired()
    const saved = yield* Deferred.make<TenantId>()
    const { desired } = yield* keepConfirmedInFiles({
      desired: memory.desired,
      restore: memory.restore,
      fileOf: (id) => join(dir, `${id}.json`),
      onSaved: (id) => Deferred.doneUnsafe(saved, Effect.succeed(id))
    })
    return { desired, owners: memory.owners, saved }
  })

/**
 * A memory store kept in `dir` whose saves are stamped with the clock when each begins (a save reads the confirmed
 * commands first): `saveStarts` receives each stamp, so a test sees when the file was written without waiting on the disk.
 */
const stamped = (dir: string) =>
  Effect.gen(function*() {
    const memory = yield* makeMemoryDesired()
    const saveStarts = yield* Queue.unbounded<number>()
    const { desired } = yield* keepConfirmedInFiles({
      desired: {
        ...memory.desired,
        confirmed: (id) => Clock.currentTimeMillis.pipe(Effect.tap((at) => Queue.offer(saveStarts, at)), Effect.andThen(memory.desired.confirmed(id)))
      },
      restore: memory.restore,
      fileOf: (id) => join(dir, `${id}.json`)
    })
    const { epoch } = yield* memory.owners.claim(a, "runner")
    const change = Effect.fnUntraced(function*(guid: string) {
      const put = yield* desired.put(a, epoch, [{ pbx: "master", guid, command: setPresence("busy") }])
      yield* desired.confirm(a, put.map((c) => ({ guid: c.guid, version: c.version })))
    })
    return { change, saveStarts }
  })

describe("confirmed PBX commands in a file (files store)", () => {
  it.effect("written once the changes were quiet for 2 s, not 2 s after the first of them", () =>
    Effect.gen(function*() {
      const { change, saveStarts } = yield* stamped(yield* tempDir)
      const start = yield* Clock.currentTimeMillis
      yield* change("u1")
      yield* TestClock.adjust("1500 millis")
      yield* change("u2")
      yield* TestClock.adjust("1500 millis")
      yield* change("u3")
      yield* TestClock.adjust("1999 millis")
      assert.strictEqual(yield* Queue.size(saveStarts), 0, "changes 1.5 s apart: no save while they go on")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* Queue.take(saveStarts)) - start, 5000, "2 s after the last change")
    }).pipe(Effect.scoped))

  it.effect("changes that never stop for 2 s are written 30 s after the first of them", () =>
    Effect.gen(function*() {
      const { change, saveStarts } = yield* stamped(yield* tempDir)
      const start = yield* Clock.currentTimeMillis
      for (let second = 0; second < 40; second++) {
        yield* change(`u${second}`)
        yield* TestClock.adjust("1 second")
      }
      assert.strictEqual((yield* Queue.take(saveStarts)) - start, 30_000, "the first save, 30 s after the first change")
      assert.strictEqual(yield* Queue.size(saveStarts), 0, "one save in 40 s of changes every second")
      yield* TestClock.adjust("1 second")
      // Taken when it begins: the first save may still hold the file.
      assert.strictEqual((yield* Queue.take(saveStarts)) - start, 41_000, "and one 2 s after they stopped")
    }).pipe(Effect.scoped))

  it.effect("written 2 s after a change, with only what the PBX confirmed", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const store = yield* open(dir)
      const { epoch } = yield* store.owners.claim(a, "runner")
      const put = yield* store.desired.put(a, epoch, [
        { pbx: "master", guid: "u1", command: setPresence("busy", "in a call") },
        { pbx: "slave", guid: "u2", command: clearPresence },
        { pbx: "master", guid: "u3", command: setPresence("away") }
      ])
      yield* store.desired.confirm(a, put.filter((c) => c.guid !== "u3").map((c) => ({ guid: c.guid, version: c.version })))
      assert.isFalse(existsSync(join(dir, "alpha.json")), "nothing written before the debounce")
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(yield* Deferred.await(store.saved), a)
      const stored = JSON.parse(readFileSync(join(dir, "alpha.json"), "utf8")) as { format: number; users: Array<Array<string>> }
      assert.strictEqual(stored.format, 1)
      assert.deepStrictEqual([...stored.users].sort(), [["u1", "master", "busy", "in a call"], ["u2", "slave"]])
    }).pipe(Effect.scoped))

  it.effect("a store opened again (a restart) holds them as confirmed, not pending; a newer command is pending again", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      // The first process: closing its scope is the stop, which writes the file.
      yield* Effect.gen(function*() {
        const store = yield* open(dir)
        const { epoch } = yield* store.owners.claim(a, "first")
        const put = yield* store.desired.put(a, epoch, [{ pbx: "master", guid: "u1", command: setPresence("dnd") }])
        yield* store.desired.confirm(a, [{ guid: "u1", version: put[0]!.version }])
      }).pipe(Effect.scoped)
      const store = yield* open(dir)
      const held = yield* store.desired.confirmed(a)
      assert.deepStrictEqual(held.map(({ guid, pbx, command }) => ({ guid, pbx, command })), [{ guid: "u1", pbx: "master", command: setPresence("dnd") }])
      assert.deepStrictEqual(yield* store.desired.pending(a, "master"), [])
      const { epoch } = yield* store.owners.claim(a, "second")
      assert.deepStrictEqual(yield* store.desired.put(a, epoch, [{ pbx: "master", guid: "u1", command: setPresence("dnd") }]), [], "unchanged")
      yield* store.desired.put(a, epoch, [{ pbx: "master", guid: "u1", command: setPresence("meeting") }])
      assert.deepStrictEqual((yield* store.desired.pending(a, "master")).map((c) => c.command), [setPresence("meeting")])
    }).pipe(Effect.scoped))

  it.effect("a file that cannot be read is left out (every user written again) and replaced at the next save", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      writeFileSync(join(dir, "alpha.json"), "{ not json")
      const scope = yield* Scope.make()
      const store = yield* open(dir).pipe(Scope.provide(scope))
      assert.deepStrictEqual(yield* store.desired.confirmed(a), [])
      const { epoch } = yield* store.owners.claim(a, "runner")
      const put = yield* store.desired.put(a, epoch, [{ pbx: "master", guid: "u9", command: clearPresence }])
      yield* store.desired.confirm(a, [{ guid: "u9", version: put[0]!.version }])
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(JSON.parse(readFileSync(join(dir, "alpha.json"), "utf8")), { format: 1, users: [["u9", "master"]] })
      writeFileSync(join(dir, "alpha.json"), JSON.stringify({ format: 1, users: [["u9", "master", "not-an-activity", ""]] }))
      const again = yield* open(dir)
      assert.deepStrictEqual(yield* again.desired.confirmed(a), [], "an entry that is not a PBX command leaves the file out")
    }).pipe(Effect.scoped))
})
