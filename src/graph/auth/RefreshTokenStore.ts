/**
 * Refresh tokens of delegated accounts, one file per account in the data directory: mode 0600, written to a temporary
 * file and renamed so a crash never leaves half a token behind. Rotated on every refresh.
 */
import { Effect, Option, Redacted, Schema } from "effect"
import { mkdir, open, readFile, rename, unlink } from "node:fs/promises"
import { join } from "node:path"
import { AuthError } from "./AuthError.ts"

const StoredToken = Schema.Struct({ username: Schema.String, refreshToken: Schema.String })

export const refreshTokenPath = (dataDir: string, account: string): string =>
  join(dataDir, "accounts", `${encodeURIComponent(account)}.refresh-token.json`)

const storeError = (account: string, action: string) =>
  new AuthError({
    reason: "Other",
    credential: `account:${account}`,
    message: `Could not ${action} the refresh token of account:${account}. Check that the data directory exists and is writable by the connector.`,
    fix: "Check that the data directory exists and is writable by the connector."
  })

export const loadRefreshToken = Effect.fnUntraced(function*(dataDir: string, account: string, username: string) {
  const text = yield* Effect.tryPromise({
    try: () => readFile(refreshTokenPath(dataDir, account), "utf8"),
    catch: (cause) => cause
  }).pipe(Effect.option)
  if (Option.isNone(text)) return Option.none<Redacted.Redacted<string>>()
  const stored = yield* Schema.decodeUnknownEffect(Schema.fromJsonString(StoredToken))(text.value).pipe(Effect.option)
  // A token stored for another user (the configuration changed) must not sign this account in.
  if (Option.isNone(stored) || stored.value.username.toLowerCase() !== username.toLowerCase()) {
    yield* Effect.logWarning("Ignoring an unreadable or foreign stored refresh token", { account })
    return Option.none<Redacted.Redacted<string>>()
  }
  return Option.some(Redacted.make(stored.value.refreshToken))
})

export const saveRefreshToken = Effect.fnUntraced(function*(
  dataDir: string,
  account: string,
  username: string,
  refreshToken: Redacted.Redacted<string>
) {
  const path = refreshTokenPath(dataDir, account)
  const temporary = `${path}.${process.pid}.tmp`
  const text = JSON.stringify({ username, refreshToken: Redacted.value(refreshToken) })
  yield* Effect.tryPromise({
    try: async () => {
      await mkdir(join(dataDir, "accounts"), { recursive: true, mode: 0o700 })
      const handle = await open(temporary, "w", 0o600)
      try {
        await handle.writeFile(text, "utf8")
        await handle.sync()
      } finally {
        await handle.close()
      }
      await rename(temporary, path)
    },
    catch: () => storeError(account, "store")
  }).pipe(Effect.tapError(() => Effect.promise(() => unlink(temporary).catch(() => undefined))))
})
