/**
 * The sign-in flows against the identity platform's token endpoint (protocols.md §1.1): client credentials with a
 * secret or a certificate assertion (the application), refresh token then password (a delegated account), and the
 * device-code login an administrator runs once for an account without a password.
 */
import { Clock, Effect, Option, Redacted, Ref } from "effect"
import type { HttpClient } from "effect/http"
import { type DelegatedAccount, deviceCodeUrl, graphScope, type GraphSettings, tokenUrl } from "../client/GraphSettings.ts"
import { AuthError, classifyTokenError } from "./AuthError.ts"
import { makeClientAssertion } from "./ClientAssertion.ts"
import { loadRefreshToken } from "./RefreshTokenStore.ts"
import { accept, type CacheOptions, type Entry, notConfigured } from "./TokenCache.ts"
import { DeviceCodeResponse, postForm, TokenResponse } from "./TokenEndpoint.ts"

export interface DeviceCodePrompt {
  readonly userCode: string
  readonly verificationUri: string
  readonly message: string
}

/** The settings and HTTP client every flow uses. */
export interface SignInContext {
  readonly settings: GraphSettings
  readonly client: HttpClient.HttpClient
  readonly cache: CacheOptions
}

const deviceCodeGrant = "urn:ietf:params:oauth:grant-type:device_code"

const delegatedScope = (settings: GraphSettings) => `${graphScope(settings)} offline_access`

const requestToken = (ctx: SignInContext, entry: Entry, form: Record<string, string>) =>
  postForm(ctx.client, tokenUrl(ctx.settings), form, TokenResponse, entry.label).pipe(
    Effect.flatMap((result) => (result._tag === "Ok" ? Effect.succeed(result.value) : Effect.fail(classifyTokenError(entry.label, result.body))))
  )

/** A new token for the entry's credential: the application's, or the delegated account's. */
export const signIn = (ctx: SignInContext, entry: Entry): Effect.Effect<TokenResponse, AuthError> =>
  entry.account === undefined ? appToken(ctx, entry) : delegatedToken(ctx, entry, entry.account)

const appToken = Effect.fn("SignIn.app")(function*(ctx: SignInContext, entry: Entry) {
  const { settings } = ctx
  const app = settings.app
  if (app === undefined) return yield* notConfigured(entry.credential)
  const base = { client_id: settings.clientId, scope: graphScope(settings), grant_type: "client_credentials" }
  if (app._tag === "ClientSecret") return yield* requestToken(ctx, entry, { ...base, client_secret: Redacted.value(app.secret) })
  const assertion = yield* makeClientAssertion({
    clientId: settings.clientId,
    tokenUrl: tokenUrl(settings),
    certificatePem: app.certificatePem,
    privateKeyPem: app.privateKeyPem
  }).pipe(Effect.mapError((name) => certificateError(entry.label, name)))
  return yield* requestToken(ctx, entry, {
    ...base,
    client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    client_assertion: Redacted.value(assertion)
  })
})

const storedRefreshToken = Effect.fnUntraced(function*(ctx: SignInContext, entry: Entry, account: DelegatedAccount) {
  const inMemory = yield* Ref.get(entry.refreshToken)
  if (Option.isSome(inMemory)) return inMemory
  const stored = yield* loadRefreshToken(ctx.cache.state, account.name, account.username)
  yield* Ref.set(entry.refreshToken, stored)
  return stored
})

const passwordGrant = Effect.fn("SignIn.password")(function*(ctx: SignInContext, entry: Entry, account: DelegatedAccount) {
  if (account.password === undefined) {
    return yield* new AuthError({
      reason: "BadUserCredentials",
      credential: entry.label,
      message: `Sign-in of ${entry.label} failed: no password is configured for the password flow. Configure the password, or use the device-code flow.`,
      fix: "Configure the password, or use the device-code flow."
    })
  }
  return yield* requestToken(ctx, entry, {
    client_id: ctx.settings.clientId,
    scope: delegatedScope(ctx.settings),
    grant_type: "password",
    username: account.username,
    password: Redacted.value(account.password)
  })
})

/** The refresh token first; a password account signs in again when it has expired, a device-code account cannot. */
const delegatedToken = Effect.fn("SignIn.delegated")(function*(ctx: SignInContext, entry: Entry, account: DelegatedAccount) {
  const refreshToken = yield* storedRefreshToken(ctx, entry, account)
  if (Option.isSome(refreshToken)) {
    const refreshed = yield* requestToken(ctx, entry, {
      client_id: ctx.settings.clientId,
      scope: delegatedScope(ctx.settings),
      grant_type: "refresh_token",
      refresh_token: Redacted.value(refreshToken.value)
    }).pipe(Effect.result)
    if (refreshed._tag === "Success") return refreshed.success
    const failure = refreshed.failure
    // A password account can always sign in again; a device-code account needs the administrator.
    if (account.flow === "deviceCode" || failure.reason !== "LoginRequired") return yield* failure
    yield* Ref.set(entry.refreshToken, Option.none())
  }
  if (account.flow === "password") return yield* passwordGrant(ctx, entry, account)
  return yield* new AuthError({
    reason: "LoginRequired",
    credential: entry.label,
    message: `${entry.label} has not signed in yet. Run \`teams-presence-connector login --account ${account.name}\`.`,
    fix: `Run \`teams-presence-connector login --account ${account.name}\`.`
  })
})

/**
 * The device-code flow: shows the code through `onPrompt`, then polls the token endpoint at the interval the platform
 * asks for (longer after `slow_down`) until the administrator has signed in, the code expired or the platform refused.
 */
export const deviceCodeLogin = Effect.fnUntraced(function*(
  ctx: SignInContext,
  entry: Entry,
  onPrompt: (prompt: DeviceCodePrompt) => Effect.Effect<void>
) {
  const { settings } = ctx
  const started = yield* postForm(
    ctx.client,
    deviceCodeUrl(settings),
    { client_id: settings.clientId, scope: delegatedScope(settings) },
    DeviceCodeResponse,
    entry.label
  )
  if (started._tag === "Failed") return yield* classifyTokenError(entry.label, started.body)
  const code = started.value
  yield* onPrompt({
    userCode: code.user_code,
    verificationUri: code.verification_uri,
    message: code.message ?? `To sign in, open ${code.verification_uri} and enter the code ${code.user_code}.`
  })
  const deadline = (yield* Clock.currentTimeMillis) + code.expires_in * 1000
  let intervalSeconds = code.interval ?? 5
  while (true) {
    yield* Effect.sleep(`${intervalSeconds} seconds`)
    if ((yield* Clock.currentTimeMillis) > deadline) return yield* classifyTokenError(entry.label, { error: "expired_token" })
    const form = { client_id: settings.clientId, grant_type: deviceCodeGrant, device_code: code.device_code }
    const polled = yield* postForm(ctx.client, tokenUrl(settings), form, TokenResponse, entry.label)
    if (polled._tag === "Ok") {
      yield* entry.lock.withPermits(1)(accept(ctx.cache, entry, polled.value))
      return yield* Effect.logInfo("Device-code login completed", { credential: entry.label })
    }
    if (polled.body.error === "authorization_pending") continue
    if (polled.body.error === "slow_down") {
      intervalSeconds += 5
      continue
    }
    return yield* classifyTokenError(entry.label, polled.body)
  }
})

const certificateError = (credential: string, detail: string) =>
  new AuthError({
    reason: "WrongSecret",
    credential,
    message: `Sign-in of ${credential} failed: the client assertion could not be signed (${detail}). Configure a PEM certificate and its matching RSA private key.`,
    fix: "Configure a PEM certificate and its matching RSA private key."
  })
