/**
 * The last command each PBX confirmed per user, kept in the tenant's state (docs/state.md, desired commands): recorded
 * behind the writes — every second, and once more when the connector stops — as a command this process (the tenant's
 * owner, with its epoch) wrote and the PBX confirmed. With files it lives in memory; in PostgreSQL it outlives the
 * process, for the next owner of the tenant. A store that fails is logged and tried again; it never holds up a write.
 */
import { Effect, Layer, Option } from "effect"
import { hostname } from "node:os"
import { PresenceWriter } from "../pbx/writer/PresenceWriter.ts"
import type { WrittenPresence } from "../pbx/writer/WriterState.ts"
import type { DesiredCommand } from "../state/Records.ts"
import { TenantState } from "../state/TenantState.ts"

/** Rows per store round trip. */
const chunkSize = 1000

export const LastWrittenLayer = Layer.effectDiscard(Effect.gen(function*() {
  const writer = yield* PresenceWriter
  const state = yield* TenantState
  const owner = yield* state.claimOwner(`${hostname()}/${process.pid}`).pipe(
    Effect.map(Option.some),
    Effect.catch((error) =>
      Effect.logError(`the last command per PBX user is not kept: ${error.message}`).pipe(Effect.as(Option.none()))
    )
  )
  if (Option.isNone(owner)) return
  const epoch = owner.value.epoch
  // What was recorded, per guid: `current` replaces an entry when the PBX confirms a write, so identity tells what changed.
  const recorded = new Map<string, WrittenPresence>()
  let fenced = false

  const record = Effect.gen(function*() {
    if (fenced) return
    const changed: Array<{ readonly row: DesiredCommand; readonly entry: WrittenPresence }> = []
    for (const [guid, entry] of yield* writer.current) {
      if (recorded.get(guid) !== entry) changed.push({ row: { pbx: entry.pbx, guid, command: entry.command }, entry })
    }
    for (let i = 0; i < changed.length; i += chunkSize) {
      const chunk = changed.slice(i, i + chunkSize)
      const versions = yield* state.desired.put(epoch, chunk.map((c) => c.row))
      yield* state.desired.confirm(versions.map((v) => ({ guid: v.guid, version: v.version })))
      for (const { row, entry } of chunk) recorded.set(row.guid, entry)
    }
  }).pipe(
    Effect.catch((error) => {
      if (error.reason !== "Fenced") return Effect.logWarning(`could not keep the last command per PBX user: ${error.message}`)
      fenced = true
      return Effect.logError(`the last command per PBX user is no longer kept: ${error.message}`)
    }),
    Effect.withSpan("LastWritten.record")
  )

  yield* Effect.forever(Effect.andThen(Effect.sleep("1 second"), record)).pipe(Effect.forkScoped)
  yield* Effect.addFinalizer(() => record)
}))
