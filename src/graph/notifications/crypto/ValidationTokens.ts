/**
 * Verifies the `validationTokens` of rich notifications (protocols.md §1.6) with `jose` against a JWKS URL: signature,
 * aud = our app id, issued for the tenant, the publisher claim = Graph's change-notification publisher, not expired.
 * Two token forms are accepted (docs/protocol-notes.md, "validation tokens"): v1 (`ver` 1.0, iss
 * `https://sts.windows.net/{tenantId}/`, publisher in `appid`) as Learn's sample code checks, and v2 (`ver` 2.0, iss
 * `https://login.microsoftonline.com/{tenantId}/v2.0`, publisher in `azp`) as its newer example token carries.
 * A token that passed is remembered by its text until it expires: the same token on a later POST is not verified again
 * — an RSA signature check on the event loop per POST, which with many tenants is nearly one per change. Its expiry is
 * checked at every use. Whether Graph sends one token more than once is not documented (changeNotificationCollection
 * says one token per app and tenant in a POST); the simulator sends one for 5 minutes (SimJwks.ts). A token never seen
 * again only costs its entry.
 */
import { Clock, Context, Effect, Layer, Schema } from "effect"
import * as jose from "jose"
import { SubscriptionSettings } from "../../subscriptions/SubscriptionSettings.ts"

/** The app id Microsoft Graph's change-notification publisher signs as. */
export const GRAPH_NOTIFICATION_APP_ID = "0bf30f3b-4a52-48df-9a82-234910c4a086"

export class ValidationTokenError extends Schema.TaggedError<ValidationTokenError>()("ValidationTokenError", {
  message: Schema.String
}) {}

const issuerForms = [/^https:\/\/sts\.windows\.net\/([^/]+)\/$/, /^https:\/\/login\.microsoftonline\.com\/([^/]+)\/v2\.0$/]

/** The tenant a token's issuer names, in the v1 or the v2 form; undefined for any other issuer. */
export const issuerTenant = (iss: unknown): string | undefined => {
  if (typeof iss !== "string") return undefined
  for (const form of issuerForms) {
    const match = form.exec(iss)
    if (match !== null) return match[1]
  }
  return undefined
}

/** Tokens remembered per tenant's verifier; beyond this the oldest is forgotten (and verified again if it comes back). */
export const verifiedTokensMax = 256

/** How far past `exp` (and before `nbf`) a token is still accepted, as jose's `clockTolerance`. */
const clockToleranceSeconds = 300

export class ValidationTokens extends Context.Service<ValidationTokens, {
  /** Succeeds when every token is valid and every tenant in `tenantIds` is covered by one of them. */
  verify(tokens: ReadonlyArray<string>, tenantIds: ReadonlyArray<string>): Effect.Effect<void, ValidationTokenError>
  /**
   * Whether `verify` would succeed from what is remembered alone (every token verified before and not expired at
   * `nowMillis`, every tenant covered): the webhook's POSTs then need no verification of their own. Synchronous.
   */
  remembered(tokens: ReadonlyArray<string>, tenantIds: ReadonlyArray<string>, nowMillis: number): boolean
  /**
   * Fetches the signing keys now, into the same cache `verify` reads (jose's remote key set), and imports each, so that
   * the first POST waits for neither (WarmUp.ts). A key set fetched already is fetched again.
   */
  readonly prime: Effect.Effect<void, ValidationTokenError>
}>()("teams-presence-connector/graph/notifications/crypto/ValidationTokens") {
  static readonly make = (options: { readonly jwksUrl: string; readonly appId: string }) => {
    const jwks = jose.createRemoteJWKSet(new URL(options.jwksUrl), { cacheMaxAge: 24 * 3600_000, cooldownDuration: 30_000 })
    /**
     * Token text → the tenant its issuer names ("" for none) and when it stops being accepted (exp plus the tolerance,
     * as jose counts), oldest first.
     */
    const verified = new Map<string, { readonly tenant: string; readonly acceptedBefore: number }>()
    const remember = (token: string, tenant: string, exp: number | undefined) => {
      if (exp === undefined) return
      if (verified.size >= verifiedTokensMax) verified.delete(verified.keys().next().value!)
      verified.set(token, { tenant, acceptedBefore: (exp + clockToleranceSeconds) * 1000 })
    }
    const verifyOne = (token: string, now: number) => {
      const known = verified.get(token)
      if (known !== undefined && now < known.acceptedBefore) return Effect.succeed(known.tenant)
      if (known !== undefined) verified.delete(token)
      return Effect.tryPromise({
        try: () => jose.jwtVerify(token, jwks, { audience: options.appId, currentDate: new Date(now), clockTolerance: clockToleranceSeconds }),
        catch: (error) => new ValidationTokenError({ message: `validation token rejected: ${describe(error)}` })
      }).pipe(Effect.flatMap(({ payload }) => {
        // v2 names the token's client in `azp`, v1 in `appid`.
        const publisher = payload["ver"] === "2.0" ? payload["azp"] : payload["appid"]
        if (publisher !== GRAPH_NOTIFICATION_APP_ID) {
          return Effect.fail(new ValidationTokenError({ message: "validation token was not issued to Microsoft Graph's notification publisher" }))
        }
        const tenant = issuerTenant(payload.iss) ?? ""
        remember(token, tenant, payload.exp)
        return Effect.succeed(tenant)
      }))
    }

    const verify = Effect.fn("ValidationTokens.verify")(function*(tokens: ReadonlyArray<string>, tenantIds: ReadonlyArray<string>) {
      if (tokens.length === 0) return yield* new ValidationTokenError({ message: "rich notification without validationTokens" })
      const now = yield* Clock.currentTimeMillis
      const covered = yield* Effect.forEach(tokens, (token) => verifyOne(token, now), { concurrency: "unbounded" })
      for (const tenant of new Set(tenantIds)) {
        if (!covered.includes(tenant)) {
          return yield* new ValidationTokenError({ message: `no validation token issued for tenant ${tenant}` })
        }
      }
    })
    const remembered = (tokens: ReadonlyArray<string>, tenantIds: ReadonlyArray<string>, now: number) => {
      if (tokens.length === 0) return false
      const covered: Array<string> = []
      for (const token of tokens) {
        const known = verified.get(token)
        if (known === undefined || now >= known.acceptedBefore) return false
        covered.push(known.tenant)
      }
      return tenantIds.every((tenant) => covered.includes(tenant))
    }
    // Each key of the set is imported too (jose keeps the imported key with the set): a tenant's first token then
    // costs its signature check only, not also the key's import (≈ 0.6 ms of the main thread each).
    const importAll = async () => {
      for (const key of jwks.jwks()?.keys ?? []) {
        if (key.kty !== "RSA" || key.use === "enc") continue
        await jwks({ alg: key.alg ?? "RS256", ...(key.kid === undefined ? {} : { kid: key.kid }) }).catch(() => undefined)
      }
    }
    const prime = Effect.tryPromise({
      try: () => jwks.reload().then(importAll),
      catch: (error) => new ValidationTokenError({ message: `validation-token keys could not be fetched: ${describe(error)}` })
    })
    return ValidationTokens.of({ verify, remembered, prime })
  }

  static readonly layer = Layer.effect(
    ValidationTokens,
    Effect.gen(function*() {
      const settings = yield* SubscriptionSettings
      return ValidationTokens.make({ jwksUrl: settings.jwksUrl, appId: settings.appId })
    })
  )
}

const describe = (error: unknown): string =>
  error instanceof Error ? `${(error as { code?: string }).code ?? error.name}: ${error.message}` : String(error)
