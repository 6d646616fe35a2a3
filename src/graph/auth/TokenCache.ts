/**
 * One access token per credential (the application, each delegated technical account): cached, refreshed ahead of
 * expiry by `Clock`, single-flight per credential (one sign-in at a time; callers that waited take its token), and the
 * last sign-in error kept for the status page. How a token is obtained is SignIn.ts's business.
 */
import { Clock, Effect, Option, Redacted, Ref, Semaphore } from "effect"
import { credentialKey, type CredentialRef, type DelegatedAccount, type GraphSettings } from "../client/GraphSettings.ts"
import { AuthError } from "./AuthError.ts"
import type { TenantState } from "../../state/TenantState.ts"
import { saveRefreshToken } from "./RefreshTokenStore.ts"
import type { TokenResponse } from "./TokenEndpoint.ts"

export interface CredentialStatus {
  readonly credential: CredentialRef
  readonly label: string
  readonly ok: boolean
  /** Epoch milliseconds at which the current access token expires. */
  readonly expiresAt?: number
  readonly error?: { readonly code: string; readonly message: string; readonly fix: string }
}

interface CachedToken {
  readonly token: Redacted.Redacted<string>
  readonly refreshAt: number
  readonly expiresAt: number
}

/** A credential's cache entry. */
export interface Entry {
  readonly credential: CredentialRef
  readonly label: string
  readonly account: DelegatedAccount | undefined
  readonly lock: Semaphore.Semaphore
  readonly cached: Ref.Ref<Option.Option<CachedToken>>
  readonly refreshToken: Ref.Ref<Option.Option<Redacted.Redacted<string>>>
  readonly lastError: Ref.Ref<Option.Option<AuthError>>
}

const makeEntry = Effect.fnUntraced(function*(credential: CredentialRef, account: DelegatedAccount | undefined) {
  return {
    credential,
    label: credentialKey(credential),
    account,
    lock: yield* Semaphore.make(1),
    cached: yield* Ref.make(Option.none<CachedToken>()),
    refreshToken: yield* Ref.make(Option.none<Redacted.Redacted<string>>()),
    lastError: yield* Ref.make(Option.none<AuthError>())
  } satisfies Entry
})

/** An entry per configured credential, by `credentialKey`. */
export const makeEntries = Effect.fnUntraced(function*(settings: GraphSettings) {
  const entries = new Map<string, Entry>()
  if (settings.app !== undefined) entries.set("app", yield* makeEntry({ _tag: "App" }, undefined))
  for (const account of settings.accounts) {
    const entry = yield* makeEntry({ _tag: "Account", name: account.name }, account)
    entries.set(entry.label, entry)
  }
  return entries as ReadonlyMap<string, Entry>
})

export const notConfigured = (credential: CredentialRef) =>
  new AuthError({
    reason: "Other",
    credential: credentialKey(credential),
    message: `${credentialKey(credential)} is not configured. Add it to the Graph section of the configuration.`,
    fix: "Add it to the Graph section of the configuration."
  })

export const lookup = (entries: ReadonlyMap<string, Entry>, credential: CredentialRef): Effect.Effect<Entry, AuthError> => {
  const entry = entries.get(credentialKey(credential))
  return entry !== undefined ? Effect.succeed(entry) : Effect.fail(notConfigured(credential))
}

/** Where a fresh answer is kept: the tenant's state (refresh tokens) and how long before expiry a token is renewed. */
export interface CacheOptions {
  readonly state: TenantState["Service"]
  readonly refreshAheadMs: number
}

/** Caches a fresh answer and stores the rotated refresh token. */
export const accept = Effect.fnUntraced(function*(options: CacheOptions, entry: Entry, response: TokenResponse) {
  const now = yield* Clock.currentTimeMillis
  const lifetimeMs = response.expires_in * 1000
  // Short-lived tokens (the simulator's) are refreshed at half their life rather than never being cached.
  const ahead = Math.min(options.refreshAheadMs, lifetimeMs / 2)
  const cached: CachedToken = { token: Redacted.make(response.access_token), refreshAt: now + lifetimeMs - ahead, expiresAt: now + lifetimeMs }
  if (entry.account !== undefined && response.refresh_token !== undefined) {
    const refreshToken = Redacted.make(response.refresh_token)
    // The previous refresh token is spent: the new one is kept in memory first, so a state store that fails (the
    // database down) costs a new sign-in after a restart at worst, never the running connector's access.
    yield* Ref.set(entry.refreshToken, Option.some(refreshToken))
    yield* saveRefreshToken(options.state, entry.account.name, entry.account.username, refreshToken).pipe(
      Effect.catch((error) => Effect.logError(error.message))
    )
  }
  yield* Ref.set(entry.cached, Option.some(cached))
  yield* Ref.set(entry.lastError, Option.none())
  yield* Effect.logDebug("Access token acquired", { credential: entry.label, expiresInSeconds: response.expires_in })
  return cached
})

/**
 * The entry's token: the cached one while it is not due, else one sign-in at a time (`signIn`); a caller that waited
 * for the lock takes the token the one before it got. A failed sign-in keeps a token that is still valid.
 */
export const tokenOf = Effect.fnUntraced(function*(
  options: CacheOptions,
  entry: Entry,
  signIn: Effect.Effect<TokenResponse, AuthError>
) {
  const now = yield* Clock.currentTimeMillis
  const cached = yield* Ref.get(entry.cached)
  if (Option.isSome(cached) && now < cached.value.refreshAt) return cached.value.token
  return yield* entry.lock.withPermits(1)(refresh(options, entry, signIn))
})

const refresh = Effect.fnUntraced(function*(options: CacheOptions, entry: Entry, signIn: Effect.Effect<TokenResponse, AuthError>) {
  const now = yield* Clock.currentTimeMillis
  const current = yield* Ref.get(entry.cached)
  // Another caller refreshed while this one waited for the lock.
  if (Option.isSome(current) && now < current.value.refreshAt) return current.value.token
  const response = yield* signIn.pipe(
    Effect.tapError((error) =>
      Ref.set(entry.lastError, Option.some(error)).pipe(
        Effect.andThen(Effect.logWarning("Sign-in failed", { credential: entry.label, reason: error.reason, code: error.code }))
      )
    ),
    Effect.result
  )
  if (response._tag === "Failure") {
    // A token that is still valid is better than none while the identity platform has trouble.
    const later = yield* Clock.currentTimeMillis
    if (Option.isSome(current) && later < current.value.expiresAt) return current.value.token
    yield* Ref.set(entry.cached, Option.none())
    return yield* response.failure
  }
  return (yield* accept(options, entry, response.success)).token
})

/** Each credential: whether it holds a valid token and its last sign-in error. */
export const statusOf = Effect.fnUntraced(function*(entries: ReadonlyMap<string, Entry>) {
  const now = yield* Clock.currentTimeMillis
  const out: Array<CredentialStatus> = []
  for (const entry of entries.values()) {
    const cached = yield* Ref.get(entry.cached)
    const error = yield* Ref.get(entry.lastError)
    const valid = Option.isSome(cached) && now < cached.value.expiresAt
    out.push({
      credential: entry.credential,
      label: entry.label,
      ok: valid && Option.isNone(error),
      ...(Option.isSome(cached) ? { expiresAt: cached.value.expiresAt } : {}),
      ...(Option.isSome(error)
        ? { error: { code: error.value.code ?? error.value.reason, message: error.value.message, fix: error.value.fix } }
        : {})
    })
  }
  return out as ReadonlyArray<CredentialStatus>
})
