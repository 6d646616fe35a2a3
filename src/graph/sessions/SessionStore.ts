/**
 * The Teams users for whom the connector holds a presence session (`pbx-to-teams-sessions.json` in the data directory,
 * mode 0600, written atomically and behind), so that a restart after a crash clears the sessions of users who are no
 * longer in a call instead of leaving them "In a call" until the session expires.
 */
import { Effect, Option, Queue, Schema } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"

export const StoredSessions = Schema.Struct({
  version: Schema.Literal(1),
  /** The application the sessions belong to (clearPresence needs its id as sessionId). */
  sessionId: Schema.String,
  userIds: Schema.Array(Schema.String)
})
export type StoredSessions = typeof StoredSessions.Type

const StoredJson = Schema.fromJsonString(StoredSessions)

export const sessionsFile = (dataDir: string) => path.join(dataDir, "pbx-to-teams-sessions.json")

/** The stored users of `sessionId`; a missing file is none, an unreadable one or another application's is logged. */
export const loadSessions = Effect.fn("SessionStore.load")(function*(dataDir: string, sessionId: string) {
  const file = sessionsFile(dataDir)
  const text = yield* Effect.tryPromise(() => fs.readFile(file, "utf8")).pipe(Effect.option)
  if (Option.isNone(text)) return [] as ReadonlyArray<string>
  const stored = yield* Schema.decodeUnknownEffect(StoredJson)(text.value).pipe(Effect.option)
  if (Option.isNone(stored)) {
    yield* Effect.logWarning(`${file} is unreadable; no stored presence sessions are cleared`)
    return []
  }
  if (stored.value.sessionId.toLowerCase() !== sessionId.toLowerCase()) {
    yield* Effect.logWarning(
      `${file} names the sessions of another application (${stored.value.sessionId}); they end by themselves when they expire`
    )
    return []
  }
  return stored.value.userIds
})

const save = (dataDir: string, state: StoredSessions) =>
  Effect.tryPromise(async () => {
    await fs.mkdir(dataDir, { recursive: true, mode: 0o700 })
    const file = sessionsFile(dataDir)
    await fs.writeFile(`${file}.tmp`, Schema.encodeSync(StoredJson)(state), { mode: 0o600 })
    await fs.rename(`${file}.tmp`, file)
  }).pipe(Effect.catch((error) => Effect.logError(`could not store the presence sessions: ${String(error)}`)))

/** Writes behind from one fiber (latest wins); `flush` writes what is still pending, on shutdown. */
export const makeSessionStore = Effect.fnUntraced(function*(dataDir: string, sessionId: string) {
  const queue = yield* Queue.sliding<ReadonlyArray<string>>(1)
  let lastSaved: ReadonlyArray<string> | undefined
  yield* Queue.take(queue).pipe(
    Effect.tap((userIds) => save(dataDir, { version: 1, sessionId, userIds })),
    Effect.tap((userIds) => Effect.sync(() => void (lastSaved = userIds))),
    Effect.forever,
    Effect.forkScoped
  )
  const flush = Effect.gen(function*() {
    const latest = Option.getOrUndefined(yield* Queue.poll(queue))
    if (latest !== undefined && latest !== lastSaved) yield* save(dataDir, { version: 1, sessionId, userIds: latest })
  })
  return { offer: (userIds: ReadonlyArray<string>) => Queue.offer(queue, userIds), flush }
})
