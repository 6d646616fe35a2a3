/**
 * Validation tokens for rich notifications, signed with the simulated identity platform's key (SimSigning) and checked
 * by the connector against the JWKS at `/common/discovery/v2.0/keys` (the path login.microsoftonline.com uses).
 * Inside the Graph simulator the key is the one in SimState, published by DiscoveryRoutes; `SimJwks.layer` and
 * `JwksRoutes` stand alone for tests that need only a JWKS.
 */
import { Clock, Context, Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import type * as jose from "jose"
import { makeSimSigning, type SimSigning } from "./SimSigning.ts"
import { SimState } from "./SimState.ts"

/** Microsoft Graph's change-notification publisher app id (the `appid` claim). */
export const GRAPH_PUBLISHER_APP_ID = "0bf30f3b-4a52-48df-9a82-234910c4a086"
export const JWKS_PATH = "/common/discovery/v2.0/keys"

/**
 * How long the simulator sends the same validation token for one app and tenant (seconds; it is valid for an hour).
 * UNCONFIRMED (docs/protocol-notes.md, "validation tokens"): Microsoft documents one token per app and tenant in each
 * POST, not whether a token is new in every POST; its example token is valid for about a day. The simulator signs one
 * per app and tenant and sends it for 5 minutes, so that a simulator POSTing for many tenants does not spend an RSA
 * signature per POST; the connector must accept either (it verifies a token text it has not seen).
 */
export const tokenReuseSeconds = 300

/**
 * The two forms Learn shows for a validation token (docs/protocol-notes.md): v1 (sample code's issuer, `appid`) as its
 * example in microsoft-graph-docs-contrib, v2 (`login.microsoftonline.com/{tid}/v2.0`, `azp`) as the live page's example.
 * The simulator sends v1 unless asked.
 */
export type TokenForm = "v1" | "v2"

/** Tokens for `appId|tenantId|form`, signed at `iat` (Clock seconds) and sent again until `tokenReuseSeconds` later. */
const fromSigning = (signing: SimSigning) => {
  const signed = new Map<string, { readonly token: string; readonly iat: number }>()
  const reused = (key: string, now: number) => {
    const known = signed.get(key)
    return known !== undefined && now >= known.iat && now - known.iat < tokenReuseSeconds ? known.token : undefined
  }
  return {
    jwks: signing.jwks,
    // Read on every POST with rich items: the token sent again is looked up without an effect.
    signedToken: (appId: string, tenantId: string, nowMillis: number) => reused(`${appId}|${tenantId}|v1`, Math.floor(nowMillis / 1000)),
    validationToken: (appId: string, tenantId: string, form: TokenForm = "v1") =>
      Effect.flatMap(Clock.currentTimeMillis, (millis) => {
        const now = Math.floor(millis / 1000)
        const key = `${appId}|${tenantId}|${form}`
        const known = reused(key, now)
        if (known !== undefined) return Effect.succeed(known)
        const common = { aud: appId, iat: now, nbf: now, exp: now + 3600, tid: tenantId }
        return signing.sign(
          form === "v1"
            ? { ...common, iss: `https://sts.windows.net/${tenantId}/`, appid: GRAPH_PUBLISHER_APP_ID, appidacr: "2", ver: "1.0" }
            : { ...common, iss: `https://login.microsoftonline.com/${tenantId}/v2.0`, azp: GRAPH_PUBLISHER_APP_ID, azpacr: "2", ver: "2.0" }
        ).pipe(Effect.tap((token) => Effect.sync(() => signed.set(key, { token, iat: now }))))
      })
  }
}

export class SimJwks extends Context.Service<SimJwks, {
  /** A validation token for `appId` in `tenantId`, valid for one hour from the Clock's now. */
  validationToken(appId: string, tenantId: string, form?: TokenForm): Effect.Effect<string>
  /** The v1 token `validationToken` would send again at `nowMillis` (the Clock's), if one is still being sent. */
  signedToken(appId: string, tenantId: string, nowMillis: number): string | undefined
  readonly jwks: { readonly keys: ReadonlyArray<jose.JWK> }
}>()("teams-presence-connector/simulators/graph/SimJwks") {
  /** A key of its own (tests that serve only a JWKS). */
  static readonly layer = Layer.effect(SimJwks, Effect.map(makeSimSigning(), (signing) => SimJwks.of(fromSigning(signing))))
  /** The Graph simulator's key (SimState), so notifications and ID tokens verify against the same published JWKS. */
  static readonly layerSimulator = Layer.effect(SimJwks, SimState.useSync((state) => SimJwks.of(fromSigning(state.signing))))
}

/** `GET /common/discovery/v2.0/keys` on a router of its own (the Graph simulator serves it in DiscoveryRoutes). */
export const JwksRoutes = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const jwks = yield* SimJwks
  yield* router.add("GET", JWKS_PATH, HttpServerResponse.jsonUnsafe(jwks.jwks))
}))
