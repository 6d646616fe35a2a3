/**
 * One access token per credential (the application, each delegated technical account): cached, refreshed ahead of
 * expiry by `Clock`, single-flight per credential, with a status per credential for the status page.
 */
import { Clock, Context, Effect, Layer, Option, Redacted, Ref, Semaphore } from "effect"
import { HttpClient } from "effect/http"
import { AuthError, classifyTokenError } from "./AuthError.ts"
import { makeClientAssertion } from "./ClientAssertion.ts"
import {
  credentialKey,
  type CredentialRef,
  defaultRefreshAheadSeconds,
  type DelegatedAccount,
  deviceCodeUrl,
  GraphConfig,
  graphScope,
  type GraphSettings,
  tokenUrl
} from "../client/GraphSettings.ts"
import { loadRefreshToken, saveRefreshToken } from "./RefreshTokenStore.ts"
import { DeviceCodeResponse, postForm, TokenResponse } from "./TokenEndpoint.ts"

export interface CredentialStatus {
  readonly credential: CredentialRef
  readonly label: string
  readonly ok: boolean
  /** Epoch milliseconds at which the current access token expires. */
  readonly expiresAt?: number
  readonly error?: { readonly code: string; readonly message: string; readonly fix: string }
}

export interface DeviceCodePrompt {
  readonly userCode: string
  readonly verificationUri: string
  readonly message: string
}

interface CachedToken {
  readonly token: Redacted.Redacted<string>
  readonly refreshAt: number
  readonly expiresAt: number
}

interface Entry {
  readonly credential: CredentialRef
  readonly label: string
  readonly account: DelegatedAccount | undefined
  readonly lock: Semaphore.Semaphore
  readonly cached: Ref.Ref<Option.Option<CachedToken>>
  readonly refreshToken: Ref.Ref<Option.Option<Redacted.Redacted<string>>>
  readonly lastError: Ref.Ref<Option.Option<AuthError>>
}

const deviceCodeGrant = "urn:ietf:params:oauth:grant-type:device_code"

export class TokenService extends Context.Service<TokenService, {
  getToken(credential: CredentialRef): Effect.Effect<Redacted.Redacted<string>, AuthError>
  /** Drops the cached access token (after Graph answered 401), so the next call fetches a new one. */
  invalidate(credential: CredentialRef): Effect.Effect<void>
  readonly status: Effect.Effect<ReadonlyArray<CredentialStatus>>
  deviceCodeLogin(
    accountName: string,
    onPrompt: (prompt: DeviceCodePrompt) => Effect.Effect<void>
  ): Effect.Effect<void, AuthError>
}>()("teams-presence-connector/graph/auth/TokenService") {
  static readonly layer = Layer.effect(
    TokenService,
    Effect.gen(function*() {
      const settings = yield* GraphConfig
      const client = yield* HttpClient.HttpClient
      const refreshAheadMs = (settings.refreshAheadSeconds ?? defaultRefreshAheadSeconds) * 1000
      const scope = graphScope(settings)
      const delegatedScope = `${scope} offline_access`

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
      const entries = new Map<string, Entry>()
      if (settings.app !== undefined) entries.set("app", yield* makeEntry({ _tag: "App" }, undefined))
      for (const account of settings.accounts) {
        const entry = yield* makeEntry({ _tag: "Account", name: account.name }, account)
        entries.set(entry.label, entry)
      }

      const lookup = (credential: CredentialRef): Effect.Effect<Entry, AuthError> => {
        const entry = entries.get(credentialKey(credential))
        return entry !== undefined ? Effect.succeed(entry) : Effect.fail(notConfigured(credential))
      }

      const requestToken = (entry: Entry, form: Record<string, string>) =>
        postForm(client, tokenUrl(settings), form, TokenResponse, entry.label).pipe(
          Effect.flatMap((result) =>
            result._tag === "Ok" ? Effect.succeed(result.value) : Effect.fail(classifyTokenError(entry.label, result.body))
          )
        )

      const appToken = Effect.fnUntraced(function*(entry: Entry) {
        const app = settings.app
        if (app === undefined) return yield* notConfigured(entry.credential)
        const base = { client_id: settings.clientId, scope, grant_type: "client_credentials" }
        if (app._tag === "ClientSecret") {
          return yield* requestToken(entry, { ...base, client_secret: Redacted.value(app.secret) })
        }
        const assertion = yield* makeClientAssertion({
          clientId: settings.clientId,
          tokenUrl: tokenUrl(settings),
          certificatePem: app.certificatePem,
          privateKeyPem: app.privateKeyPem
        }).pipe(Effect.mapError((name) => certificateError(entry.label, name)))
        return yield* requestToken(entry, {
          ...base,
          client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
          client_assertion: Redacted.value(assertion)
        })
      })

      const storedRefreshToken = Effect.fnUntraced(function*(entry: Entry, account: DelegatedAccount) {
        const inMemory = yield* Ref.get(entry.refreshToken)
        if (Option.isSome(inMemory)) return inMemory
        const stored = yield* loadRefreshToken(settings.dataDir, account.name, account.username)
        yield* Ref.set(entry.refreshToken, stored)
        return stored
      })

      const passwordGrant = Effect.fnUntraced(function*(entry: Entry, account: DelegatedAccount) {
        if (account.password === undefined) {
          return yield* new AuthError({
            reason: "BadUserCredentials",
            credential: entry.label,
            message: `Sign-in of ${entry.label} failed: no password is configured for the password flow. Configure the password, or use the device-code flow.`,
            fix: "Configure the password, or use the device-code flow."
          })
        }
        return yield* requestToken(entry, {
          client_id: settings.clientId,
          scope: delegatedScope,
          grant_type: "password",
          username: account.username,
          password: Redacted.value(account.password)
        })
      })

      const delegatedToken = Effect.fnUntraced(function*(entry: Entry, account: DelegatedAccount) {
        const refreshToken = yield* storedRefreshToken(entry, account)
        if (Option.isSome(refreshToken)) {
          const refreshed = yield* requestToken(entry, {
            client_id: settings.clientId,
            scope: delegatedScope,
            grant_type: "refresh_token",
            refresh_token: Redacted.value(refreshToken.value)
          }).pipe(Effect.result)
          if (refreshed._tag === "Success") return refreshed.success
          const failure = refreshed.failure
          // A password account can always sign in again; a device-code account needs the administrator.
          if (account.flow === "deviceCode" || failure.reason !== "LoginRequired") return yield* failure
          yield* Ref.set(entry.refreshToken, Option.none())
        }
        if (account.flow === "password") return yield* passwordGrant(entry, account)
        return yield* new AuthError({
          reason: "LoginRequired",
          credential: entry.label,
          message: `${entry.label} has not signed in yet. Run \`teams-presence-connector login --account ${account.name}\`.`,
          fix: `Run \`teams-presence-connector login --account ${account.name}\`.`
        })
      })

      /** Caches a fresh answer and stores the rotated refresh token. */
      const accept = Effect.fnUntraced(function*(entry: Entry, response: TokenResponse) {
        const now = yield* Clock.currentTimeMillis
        const lifetimeMs = response.expires_in * 1000
        // Short-lived tokens (the simulator's) are refreshed at half their life rather than never being cached.
        const ahead = Math.min(refreshAheadMs, lifetimeMs / 2)
        const cached: CachedToken = {
          token: Redacted.make(response.access_token),
          refreshAt: now + lifetimeMs - ahead,
          expiresAt: now + lifetimeMs
        }
        if (entry.account !== undefined && response.refresh_token !== undefined) {
          const refreshToken = Redacted.make(response.refresh_token)
          yield* saveRefreshToken(settings.dataDir, entry.account.name, entry.account.username, refreshToken)
          yield* Ref.set(entry.refreshToken, Option.some(refreshToken))
        }
        yield* Ref.set(entry.cached, Option.some(cached))
        yield* Ref.set(entry.lastError, Option.none())
        yield* Effect.logDebug("Access token acquired", { credential: entry.label, expiresInSeconds: response.expires_in })
        return cached
      })

      const refresh = Effect.fnUntraced(function*(entry: Entry) {
        const now = yield* Clock.currentTimeMillis
        const current = yield* Ref.get(entry.cached)
        // Another caller refreshed while this one waited for the lock.
        if (Option.isSome(current) && now < current.value.refreshAt) return current.value.token
        const response = yield* (entry.account === undefined ? appToken(entry) : delegatedToken(entry, entry.account))
          .pipe(
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
        return (yield* accept(entry, response.success)).token
      })

      const getToken = Effect.fn("TokenService.getToken")(function*(credential: CredentialRef) {
        const entry = yield* lookup(credential)
        const now = yield* Clock.currentTimeMillis
        const cached = yield* Ref.get(entry.cached)
        if (Option.isSome(cached) && now < cached.value.refreshAt) return cached.value.token
        return yield* entry.lock.withPermits(1)(refresh(entry))
      })

      const invalidate = Effect.fn("TokenService.invalidate")(function*(credential: CredentialRef) {
        const entry = entries.get(credentialKey(credential))
        if (entry !== undefined) yield* Ref.set(entry.cached, Option.none())
      })

      const status = Effect.gen(function*() {
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

      const deviceCodeLogin = Effect.fn("TokenService.deviceCodeLogin")(function*(
        accountName: string,
        onPrompt: (prompt: DeviceCodePrompt) => Effect.Effect<void>
      ) {
        const entry = yield* lookup({ _tag: "Account", name: accountName })
        const started = yield* postForm(
          client,
          deviceCodeUrl(settings),
          { client_id: settings.clientId, scope: delegatedScope },
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
          if ((yield* Clock.currentTimeMillis) > deadline) {
            return yield* classifyTokenError(entry.label, { error: "expired_token" })
          }
          const polled = yield* postForm(
            client,
            tokenUrl(settings),
            { client_id: settings.clientId, grant_type: deviceCodeGrant, device_code: code.device_code },
            TokenResponse,
            entry.label
          )
          if (polled._tag === "Ok") {
            yield* entry.lock.withPermits(1)(accept(entry, polled.value))
            yield* Effect.logInfo("Device-code login completed", { credential: entry.label })
            return
          }
          if (polled.body.error === "authorization_pending") continue
          if (polled.body.error === "slow_down") {
            intervalSeconds += 5
            continue
          }
          return yield* classifyTokenError(entry.label, polled.body)
        }
      })

      return TokenService.of({ getToken, invalidate, status, deviceCodeLogin })
    })
  )
}

const notConfigured = (credential: CredentialRef) =>
  new AuthError({
    reason: "Other",
    credential: credentialKey(credential),
    message: `${credentialKey(credential)} is not configured. Add it to the Graph section of the configuration.`,
    fix: "Add it to the Graph section of the configuration."
  })

const certificateError = (credential: string, detail: string) =>
  new AuthError({
    reason: "WrongSecret",
    credential,
    message: `Sign-in of ${credential} failed: the client assertion could not be signed (${detail}). Configure a PEM certificate and its matching RSA private key.`,
    fix: "Configure a PEM certificate and its matching RSA private key."
  })

export type { GraphSettings }
