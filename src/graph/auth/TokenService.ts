/**
 * The access tokens of every configured credential (the application, each delegated technical account), for the
 * Graph client: cached and refreshed ahead of expiry, single-flight per credential (TokenCache.ts), obtained by the
 * identity platform's sign-in flows (SignIn.ts); a status per credential for the status page.
 */
import { Context, Effect, Layer, Option, type Redacted, Ref } from "effect"
import { HttpClient } from "effect/http"
import { TenantState } from "../../state/TenantState.ts"
import type { AuthError } from "./AuthError.ts"
import { credentialKey, type CredentialRef, defaultRefreshAheadSeconds, GraphConfig, type GraphSettings } from "../client/GraphSettings.ts"
import { deviceCodeLogin, type DeviceCodePrompt, signIn, type SignInContext } from "./SignIn.ts"
import { type CredentialStatus, lookup, makeEntries, statusOf, tokenOf } from "./TokenCache.ts"

export type { DeviceCodePrompt } from "./SignIn.ts"
export type { CredentialStatus } from "./TokenCache.ts"

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
      const ctx: SignInContext = {
        settings,
        client: yield* HttpClient.HttpClient,
        cache: { state: yield* TenantState, refreshAheadMs: (settings.refreshAheadSeconds ?? defaultRefreshAheadSeconds) * 1000 }
      }
      const entries = yield* makeEntries(settings)

      const getToken = Effect.fn("TokenService.getToken")(function*(credential: CredentialRef) {
        const entry = yield* lookup(entries, credential)
        return yield* tokenOf(ctx.cache, entry, signIn(ctx, entry))
      })

      const invalidate = Effect.fn("TokenService.invalidate")(function*(credential: CredentialRef) {
        const entry = entries.get(credentialKey(credential))
        if (entry !== undefined) yield* Ref.set(entry.cached, Option.none())
      })

      const login = Effect.fn("TokenService.deviceCodeLogin")(function*(
        accountName: string,
        onPrompt: (prompt: DeviceCodePrompt) => Effect.Effect<void>
      ) {
        const entry = yield* lookup(entries, { _tag: "Account", name: accountName })
        yield* deviceCodeLogin(ctx, entry, onPrompt)
      })

      return TokenService.of({ getToken, invalidate, status: statusOf(entries), deviceCodeLogin: login })
    })
  )
}

export type { GraphSettings }
