/**
 * Refresh tokens of delegated accounts, kept in the tenant's state (src/state: a file per account in the data
 * directory, or a row in PostgreSQL; sealed at rest with the state key). Rotated on every refresh.
 */
import { Effect, Option, type Redacted } from "effect"
import type { StateStoreError } from "../../state/StateStoreError.ts"
import type { TenantState } from "../../state/TenantState.ts"
import { AuthError } from "./AuthError.ts"

const fixFor = (error: StateStoreError): string =>
  error.reason === "Sealed" || error.reason === "NotConfigured"
    ? "Configure the state key that sealed it (CONNECTOR_STATE_KEY, or an earlier key in CONNECTOR_STATE_KEY_PREVIOUS) and restart."
    : "Check that the data directory is writable by the connector, or that the state database is reachable."

const storeError = (account: string, action: string) => (error: StateStoreError) =>
  new AuthError({
    reason: "Other",
    credential: `account:${account}`,
    message: `Could not ${action} the refresh token of account:${account}: ${error.message}. ${fixFor(error)}`,
    fix: fixFor(error)
  })

/**
 * The account's stored refresh token. A token stored for another user (the configuration changed) or a record that
 * does not decode is ignored (the account signs in again); a store that cannot be reached or a token sealed with a key
 * that is not configured is an error, not a missing sign-in.
 */
export const loadRefreshToken = Effect.fnUntraced(function*(state: TenantState["Service"], account: string, username: string) {
  const stored = yield* state.refreshTokens.get(account).pipe(
    Effect.map((found) => (Option.isSome(found) ? found.value : "none" as const)),
    Effect.catch((error) => (error.reason === "Corrupt" ? Effect.succeed("unreadable" as const) : Effect.fail(storeError(account, "read")(error))))
  )
  if (stored === "none") return Option.none<Redacted.Redacted<string>>()
  if (stored === "unreadable" || stored.username.toLowerCase() !== username.toLowerCase()) {
    yield* Effect.logWarning("Ignoring an unreadable or foreign stored refresh token", { account })
    return Option.none<Redacted.Redacted<string>>()
  }
  return Option.some(stored.refreshToken)
})

export const saveRefreshToken = Effect.fnUntraced(function*(
  state: TenantState["Service"],
  account: string,
  username: string,
  refreshToken: Redacted.Redacted<string>
) {
  yield* state.refreshTokens.put(account, { username, refreshToken }).pipe(Effect.mapError(storeError(account, "store")))
})
