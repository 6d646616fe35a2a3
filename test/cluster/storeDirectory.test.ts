/**
 * The owner's user directory read from the state store (src/cluster/StoreDirectory.ts): the first published table is a
 * reset and makes it ready, later publishes arrive as the edits between them, a record without users (the master
 * logged in, its table not loaded yet) changes nothing, and the master's login facts reach the licences; the look
 * every 30 s reads the record only when its stamp changed.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Option, Redacted } from "effect"
import { TestClock } from "effect/testing"
import { join } from "node:path"
import { storeDirectory } from "../../src/cluster/StoreDirectory.ts"
import { RemoteMaster } from "../../src/pbx/directory/Licences.ts"
import { PbxDirectory } from "../../src/pbx/directory/PbxDirectory.ts"
import { makePbxSettings, PbxSettings } from "../../src/pbx/PbxSettings.ts"
import { type PbxDirectoryRecord, StateStore, type StoredPbxUser } from "../../src/state/StateStore.ts"
import { keyEnv, newKey, openStore, tenant, withEnv } from "../state/fixtures.ts"
import { collect } from "../support/streams.ts"
import { tempDirSync } from "../support/tempDir.ts"
import { makeRecordedWaits } from "../support/waiting.ts"

const alpha = tenant("alpha")
const user = (guid: string, loc = "master"): StoredPbxUser => ({
  guid,
  h323: guid,
  cn: `User ${guid}`,
  dn: guid,
  e164: "",
  emails: [`${guid}@example.com`],
  loc,
  node: "",
  apps: ["teams"],
  hide: false
})
const record = (users: ReadonlyArray<StoredPbxUser> | undefined, publishedAt: number): PbxDirectoryRecord => ({
  pbx: "master",
  ...(users !== undefined ? { users } : {}),
  master: { appName: "teams", lics: 5, loggedIn: true },
  runner: "r2",
  publishedAt
})

describe("the user directory through the state store", () => {
  it.live("reset first, then the edits; the master's facts for the licences", () =>
    Effect.gen(function*() {
      const store = yield* openStore(StateStore.layerFiles(join(tempDirSync("tpc-dir-"), "data")).pipe(Layer.provide(withEnv(keyEnv(newKey())))))
      yield* store.directory.publish(alpha, record(undefined, 1))
      const settings = makePbxSettings({ appPassword: Redacted.make("x"), masterPbx: "master" })
      const context = yield* Layer.build(storeDirectory(alpha).pipe(
        Layer.provide(PbxSettings.layer(settings)),
        Layer.provide(Layer.succeed(StateStore, store))
      ))
      const directory = Context.get(context, PbxDirectory)
      const first = yield* collect(directory.changes, 1)
      yield* store.directory.publish(alpha, record([user("g1"), user("g2")], 2))
      yield* directory.ready
      const reset = (yield* first)[0]!
      assert.strictEqual(reset._tag, "Reset")
      assert.deepStrictEqual(reset._tag === "Reset" ? [...reset.users.keys()].sort() : [], ["g1", "g2"])
      assert.deepStrictEqual(Option.getOrUndefined(yield* Context.get(context, RemoteMaster).info), { appName: "teams", lics: 5, loggedIn: true })

      const three = yield* collect(directory.changes, 3)
      yield* store.directory.publish(alpha, record(undefined, 3))
      yield* store.directory.publish(alpha, record([user("g1", "slave-1"), user("g3")], 4))
      const edits = (yield* three).map((c) => `${c._tag}:${"user" in c ? c.user.guid : ""}`).sort()
      assert.deepStrictEqual(edits, ["Added:g3", "Removed:g2", "Updated:g1"], "a record without users changed nothing")
      assert.strictEqual(Option.getOrUndefined(yield* directory.get("g1"))?.loc, "slave-1")
      assert.strictEqual((yield* directory.snapshot).size, 2)
    }))

  it.effect("the look every 30 s compares the record's stamp and reads the record only when it changed", () =>
    Effect.gen(function*() {
      const real = yield* openStore(StateStore.layerFiles(join(tempDirSync("tpc-dir-"), "data")).pipe(Layer.provide(withEnv(keyEnv(newKey())))))
      const { recorded, until } = makeRecordedWaits()
      let loads = 0
      let stamps = 0
      const store = StateStore.of({
        ...real,
        directory: {
          ...real.directory,
          load: (t, pbx) => Effect.tap(real.directory.load(t, pbx), () => Effect.sync(() => { loads += 1 })),
          stamp: (t, pbx) => Effect.tap(real.directory.stamp(t, pbx), () => Effect.sync(() => {
            stamps += 1
            recorded()
          }))
        }
      })
      yield* store.directory.publish(alpha, record([user("g1"), user("g2")], 1))
      const settings = makePbxSettings({ appPassword: Redacted.make("x"), masterPbx: "master" })
      const context = yield* Layer.build(storeDirectory(alpha).pipe(
        Layer.provide(PbxSettings.layer(settings)),
        Layer.provide(Layer.succeed(StateStore, store))
      ))
      const directory = Context.get(context, PbxDirectory)
      yield* directory.ready
      /** 30 s pass and the look they wake has read the stamp (the looks run one after the other, in one fiber). */
      const look = Effect.gen(function*() {
        const before = stamps
        yield* TestClock.adjust("30 seconds")
        yield* until(() => stamps > before)
      })
      // Two looks: whatever the start and the first wake-ups read is over by the end of the second.
      yield* look
      yield* look
      const settled = loads
      yield* look
      yield* look
      yield* look
      assert.strictEqual(loads, settled, "an unchanged record is not read again")

      const edits = yield* collect(directory.changes, 1)
      yield* store.directory.publish(alpha, record([user("g1"), user("g2"), user("g3")], 2))
      assert.deepStrictEqual((yield* edits).map((c) => c._tag), ["Added"])
      assert.strictEqual(loads, settled + 1, "a publish is read")
    }))
})
