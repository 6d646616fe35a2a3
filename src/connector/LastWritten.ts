/**
 * The last command each PBX confirmed per user, kept in the tenant's state (docs/state.md, desired commands): recorded
 * behind the writes — every second the users confirmed since (not a pass over all users), and once more when the
 * connector stops — as a command this process (the tenant's owner, with its epoch) wrote and the PBX confirmed. It
 * outlives the process (files: one file per tenant; PostgreSQL: its table), and at start-up the writer takes it as
 * confirmed, so a restart writes only what changed. A store that fails is logged and tried again; it never holds up a
 * write.
 */
import { Effect, Layer, Option, PubSub } from "effect"
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
  // Subscribed before anything is written: every confirmation from here on names its user.
  const confirmations = yield* writer.confirmations
  yield* inheritLastWritten(writer, state, recorded)

  // Users confirmed since the last round, and those whose recording failed (tried again next round).
  const waiting = new Set<string>()
  const record = Effect.gen(function*() {
    if (fenced) return
    // takeUpTo, not takeAll: it answers at once when nothing came (takeAll waits for a first element).
    for (const guids of yield* PubSub.takeUpTo(confirmations, Number.MAX_SAFE_INTEGER)) for (const guid of guids) waiting.add(guid)
    const current = yield* writer.current
    const changed: Array<DesiredCommand> = []
    for (const guid of waiting) {
      const entry = current.get(guid)
      if (entry !== undefined && recorded.get(guid) !== entry) {
        recorded.set(guid, entry)
        changed.push({ pbx: entry.pbx, guid, command: entry.command })
      }
    }
    waiting.clear()
    for (let i = 0; i < changed.length; i += chunkSize) {
      const chunk = changed.slice(i, i + chunkSize)
      const versions = yield* state.desired.put(epoch, chunk).pipe(
        Effect.tapError(() =>
          Effect.sync(() => {
            for (const row of changed.slice(i)) {
              recorded.delete(row.guid)
              waiting.add(row.guid)
            }
          })
        )
      )
      yield* state.desired.confirm(versions.map((v) => ({ guid: v.guid, version: v.version })))
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

/**
 * What the PBXs held when the last process stopped (the store's confirmed commands) becomes the writer's confirmed
 * state, so that the restart writes only the users whose presence differs (WriterState.ts `inherit`).
 */
const inheritLastWritten = Effect.fnUntraced(function*(
  writer: PresenceWriter["Service"],
  state: TenantState["Service"],
  recorded: Map<string, WrittenPresence>
) {
  if (writer.inherit === undefined) return
  const held = yield* state.desired.confirmed.pipe(
    Effect.catch((error) => Effect.as(Effect.logWarning(`the PBXs' last confirmed commands could not be read; every user is written again: ${error.message}`), []))
  )
  if (held.length === 0) return
  const count = yield* writer.inherit(held)
  const current = yield* writer.current
  for (const { guid } of held) {
    const entry = current.get(guid)
    if (entry !== undefined) recorded.set(guid, entry)
  }
  yield* Effect.logInfo(`${count} users' presence as the PBXs confirmed it before the restart: written again only where it changed`)
})
