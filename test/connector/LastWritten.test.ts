/**
 * The last command per PBX user (src/connector/LastWritten.ts) on the files store: recorded behind the writes, taken
 * back by the writer at the next start, and a stop that finds nothing new to record ends at once.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Layer, PubSub, Scope } from "effect"
import { TestClock } from "effect/testing"
import { LastWrittenLayer } from "../../src/connector/LastWritten.ts"
import { type PbxPresenceCommand, setPresence } from "../../src/domain/PbxPresence.ts"
import { PresenceWriter } from "../../src/pbx/writer/PresenceWriter.ts"
import type { WrittenPresence } from "../../src/pbx/writer/WriterState.ts"
import { TenantState } from "../../src/state/TenantState.ts"
import { fileState } from "../support/state.ts"
import { tempDir } from "../support/tempDir.ts"

type Inherited = ReadonlyArray<{ readonly guid: string; readonly pbx: string; readonly command: PbxPresenceCommand }>

/** A writer with what its PBXs confirmed in `current` and the confirmations it announces; `inherited` gets `inherit`. */
const stubWriter = Effect.gen(function*() {
  const current = new Map<string, WrittenPresence>()
  const confirmations = yield* PubSub.unbounded<ReadonlyArray<string>>()
  const inherited = yield* Deferred.make<Inherited>()
  const writer = PresenceWriter.of({
    write: () => Effect.void,
    writeAll: () => Effect.void,
    flush: Effect.void,
    current: Effect.succeed(current),
    desired: Effect.succeed(new Map()),
    confirmations: PubSub.subscribe(confirmations),
    inherit: (commands) => Effect.as(Deferred.succeed(inherited, commands), commands.length)
  })
  const confirm = (guid: string, command: PbxPresenceCommand) =>
    Effect.andThen(Effect.sync(() => current.set(guid, { command, pbx: "pbx-master", sentAt: 1 })), PubSub.publish(confirmations, [guid]))
  return { writer, confirm, inherited }
})

/** One process: the layer in a scope of its own over the files in `dataDir`; closing the scope is its stop. */
const start = (dataDir: string) =>
  Effect.gen(function*() {
    const stub = yield* stubWriter
    const scope = yield* Scope.make()
    yield* Layer.buildWithScope(
      LastWrittenLayer.pipe(Layer.provide(Layer.succeed(PresenceWriter, stub.writer)), Layer.provideMerge(fileState(dataDir))),
      scope
    )
    return { ...stub, stop: Scope.close(scope, Exit.void) }
  })

describe("LastWritten", () => {
  it.effect("what the PBXs confirmed is recorded, a stop with nothing new ends at once, and the next start inherits it", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const first = yield* start(dataDir)
      yield* first.confirm("u1", setPresence("busy"))
      yield* first.confirm("u2", setPresence("away", "lunch"))
      // The round after a second records both; the next rounds find nothing new.
      yield* TestClock.adjust("3 seconds")
      yield* first.stop
      const second = yield* start(dataDir)
      const inherited = yield* Deferred.await(second.inherited)
      assert.deepStrictEqual(
        [...inherited].map(({ guid, pbx, command }) => [guid, pbx, command]).sort(),
        [["u1", "pbx-master", setPresence("busy")], ["u2", "pbx-master", setPresence("away", "lunch")]]
      )
      const stored = yield* Effect.gen(function*() {
        return yield* (yield* TenantState).desired.confirmed
      }).pipe(Effect.provide(fileState(dataDir)))
      assert.strictEqual(stored.length, 2)
      yield* second.stop
    }).pipe(Effect.scoped))
})
