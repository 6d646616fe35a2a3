/**
 * The manager's persisted state (`subscriptions.json` in the data directory, mode 0600, written atomically): the
 * subscription ids, clientStates, expiries and certificate ids, so a restart adopts its own live subscriptions.
 */
import { Effect, Schema } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"

export const PersistedSubscription = Schema.Struct({
  subscriptionId: Schema.String,
  clientState: Schema.String,
  expiresAt: Schema.Number,
  certificateId: Schema.optionalKey(Schema.String)
})
export type PersistedSubscription = typeof PersistedSubscription.Type

export const PersistedShard = Schema.Struct({
  key: Schema.String,
  account: Schema.String,
  userIds: Schema.Array(Schema.String),
  subscription: Schema.optionalKey(PersistedSubscription),
  /** The users the subscription's resource names (the licensed part of `userIds`); absent in older files. */
  subscribedIds: Schema.optionalKey(Schema.Array(Schema.String))
})
export type PersistedShard = typeof PersistedShard.Type

export const PersistedState = Schema.Struct({
  version: Schema.Literal(1),
  shards: Schema.Array(PersistedShard),
  users: Schema.optionalKey(PersistedSubscription)
})
export type PersistedState = typeof PersistedState.Type

const StateJson = Schema.fromJsonString(PersistedState)

export const emptyState: PersistedState = { version: 1, shards: [] }

export const stateFile = (dataDir: string) => path.join(dataDir, "subscriptions.json")

/** Reads the state; a missing file is an empty state, a corrupt one is logged and treated as empty. */
export const loadState = (dataDir: string): Effect.Effect<PersistedState> =>
  Effect.tryPromise(() => fs.readFile(stateFile(dataDir), "utf8")).pipe(
    Effect.option,
    Effect.flatMap((text) =>
      text._tag === "None"
        ? Effect.succeed(emptyState)
        : Schema.decodeUnknownEffect(StateJson)(text.value).pipe(
          Effect.catch((error) =>
            Effect.logWarning(`${stateFile(dataDir)} is unreadable (${error.message}); starting without adopted subscriptions`).pipe(
              Effect.as(emptyState)
            )
          )
        )
    )
  )

export const saveState = (dataDir: string, state: PersistedState): Effect.Effect<void> =>
  Effect.tryPromise(async () => {
    await fs.mkdir(dataDir, { recursive: true, mode: 0o700 })
    const file = stateFile(dataDir)
    await fs.writeFile(`${file}.tmp`, Schema.encodeSync(StateJson)(state), { mode: 0o600 })
    await fs.rename(`${file}.tmp`, file)
  }).pipe(Effect.catch((error) => Effect.logError(`could not persist subscription state: ${String(error)}`)))
