/**
 * The data directory as version 0.1.0 wrote and read it, before the state store: the file code of that version's
 * src/graph/auth/RefreshTokenStore.ts, src/graph/subscriptions/SubscriptionStore.ts and
 * src/graph/notifications/crypto/CertificateStore.ts, kept here unchanged in what it reads and writes. The tests use
 * it to prove that an existing installation's files are adopted as they are, and that what the connector writes
 * without a state key is still exactly what that version reads.
 */
import { Effect, Option, Redacted, Schema } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"

// accounts/<account>.refresh-token.json

const StoredToken = Schema.Struct({ username: Schema.String, refreshToken: Schema.String })

export const refreshTokenPath = (dataDir: string, account: string): string =>
  path.join(dataDir, "accounts", `${encodeURIComponent(account)}.refresh-token.json`)

export const loadRefreshToken = Effect.fnUntraced(function*(dataDir: string, account: string, username: string) {
  const text = yield* Effect.tryPromise({ try: () => fs.readFile(refreshTokenPath(dataDir, account), "utf8"), catch: (cause) => cause }).pipe(
    Effect.option
  )
  if (Option.isNone(text)) return Option.none<Redacted.Redacted<string>>()
  const stored = yield* Schema.decodeUnknownEffect(Schema.fromJsonString(StoredToken))(text.value).pipe(Effect.option)
  if (Option.isNone(stored) || stored.value.username.toLowerCase() !== username.toLowerCase()) return Option.none<Redacted.Redacted<string>>()
  return Option.some(Redacted.make(stored.value.refreshToken))
})

export const saveRefreshToken = (dataDir: string, account: string, username: string, refreshToken: Redacted.Redacted<string>) =>
  Effect.promise(async () => {
    const file = refreshTokenPath(dataDir, account)
    const temporary = `${file}.${process.pid}.tmp`
    await fs.mkdir(path.join(dataDir, "accounts"), { recursive: true, mode: 0o700 })
    const handle = await fs.open(temporary, "w", 0o600)
    try {
      await handle.writeFile(JSON.stringify({ username, refreshToken: Redacted.value(refreshToken) }), "utf8")
      await handle.sync()
    } finally {
      await handle.close()
    }
    await fs.rename(temporary, file)
  })

// subscriptions.json

const PersistedSubscription = Schema.Struct({
  subscriptionId: Schema.String,
  clientState: Schema.String,
  expiresAt: Schema.Number,
  certificateId: Schema.optionalKey(Schema.String)
})

export const PersistedState = Schema.Struct({
  version: Schema.Literal(1),
  shards: Schema.Array(Schema.Struct({
    key: Schema.String,
    account: Schema.String,
    userIds: Schema.Array(Schema.String),
    subscription: Schema.optionalKey(PersistedSubscription),
    subscribedIds: Schema.optionalKey(Schema.Array(Schema.String))
  })),
  users: Schema.optionalKey(PersistedSubscription)
})
export type PersistedState = typeof PersistedState.Type

const StateJson = Schema.fromJsonString(PersistedState)

export const stateFile = (dataDir: string) => path.join(dataDir, "subscriptions.json")

/** The state; None when the file is missing or does not decode (that version then started without adopting). */
export const loadState = (dataDir: string) =>
  Effect.promise(() => fs.readFile(stateFile(dataDir), "utf8").catch(() => undefined)).pipe(
    Effect.flatMap((text) => (text === undefined ? Effect.succeedNone : Schema.decodeUnknownEffect(StateJson)(text).pipe(Effect.option)))
  )

export const saveState = (dataDir: string, state: PersistedState) =>
  Effect.promise(async () => {
    await fs.mkdir(dataDir, { recursive: true, mode: 0o700 })
    const file = stateFile(dataDir)
    await fs.writeFile(`${file}.tmp`, Schema.encodeSync(StateJson)(state), { mode: 0o600 })
    await fs.rename(`${file}.tmp`, file)
  })

// rich-notification-keys.json

export const KeyFile = Schema.Struct({
  currentId: Schema.String,
  certificates: Schema.Array(Schema.Struct({
    id: Schema.String,
    certificate: Schema.String,
    privateKey: Schema.String,
    thumbprint: Schema.String,
    createdAt: Schema.Number,
    notAfter: Schema.Number
  }))
})
export type KeyFile = typeof KeyFile.Type

const KeyJson = Schema.fromJsonString(KeyFile)

export const keyFile = (dataDir: string) => path.join(dataDir, "rich-notification-keys.json")

/** The key file; None when it is missing; a file that does not decode fails (that version reported it). */
export const readKeyFile = (dataDir: string) =>
  Effect.promise(() => fs.readFile(keyFile(dataDir), "utf8").catch(() => undefined)).pipe(
    Effect.flatMap((text) => (text === undefined ? Effect.succeedNone : Schema.decodeUnknownEffect(KeyJson)(text).pipe(Effect.map(Option.some))))
  )

export const writeKeyFile = (dataDir: string, store: KeyFile) =>
  Effect.promise(async () => {
    const file = keyFile(dataDir)
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
    await fs.writeFile(`${file}.tmp`, Schema.encodeSync(KeyJson)(store), { mode: 0o600 })
    await fs.rename(`${file}.tmp`, file)
  })
