/**
 * The simulator's stand-in for the identity platform's signing keys: one RSA key that signs the `validationTokens`
 * of rich notifications, published as a JWKS at `/common/discovery/v2.0/keys` (the path login.microsoftonline.com uses).
 */
import { Clock, Context, Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as jose from "jose"

/** Microsoft Graph's change-notification publisher app id (the `appid` claim). */
export const GRAPH_PUBLISHER_APP_ID = "0bf30f3b-4a52-48df-9a82-234910c4a086"
export const JWKS_PATH = "/common/discovery/v2.0/keys"

export class SimJwks extends Context.Service<SimJwks, {
  /** A validation token for `appId` in `tenantId`, valid for one hour from the Clock's now. */
  validationToken(appId: string, tenantId: string): Effect.Effect<string>
  readonly jwks: { readonly keys: ReadonlyArray<jose.JWK> }
}>()("presence-connector/simulators/graph/SimJwks") {
  static readonly layer = Layer.effect(
    SimJwks,
    Effect.gen(function*() {
      const kid = "sim-graph-notifications"
      const { privateKey, publicKey } = yield* Effect.promise(() => jose.generateKeyPair("RS256", { extractable: true }))
      const jwk = yield* Effect.promise(() => jose.exportJWK(publicKey))
      const jwks = { keys: [{ ...jwk, kid, use: "sig", alg: "RS256" }] }
      const validationToken = (appId: string, tenantId: string) =>
        Effect.gen(function*() {
          const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
          return yield* Effect.promise(() =>
            new jose.SignJWT({ appid: GRAPH_PUBLISHER_APP_ID, appidacr: "2", tid: tenantId, ver: "1.0" })
              .setProtectedHeader({ alg: "RS256", kid, typ: "JWT" })
              .setAudience(appId)
              .setIssuer(`https://sts.windows.net/${tenantId}/`)
              .setIssuedAt(now)
              .setNotBefore(now)
              .setExpirationTime(now + 3600)
              .sign(privateKey)
          )
        })
      return SimJwks.of({ validationToken, jwks })
    })
  )
}

/** `GET /common/discovery/v2.0/keys` on the simulator's router. */
export const JwksRoutes = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const jwks = yield* SimJwks
  yield* router.add("GET", JWKS_PATH, HttpServerResponse.jsonUnsafe(jwks.jwks))
}))
