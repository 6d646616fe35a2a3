/**
 * The simulated identity platform's one signing key (RS256, like the real platform's `id_token_signing_alg_values_supported`):
 * it signs ID tokens and the `validationTokens` of rich notifications, and is published as a JWKS at every tenant's
 * `jwks_uri` (`/{tenant}/discovery/v2.0/keys`, `/common/discovery/v2.0/keys` among them).
 */
import { Effect } from "effect"
import * as jose from "jose"

export interface SimSigning {
  readonly jwks: { readonly keys: ReadonlyArray<jose.JWK> }
  /** A compact JWS over `claims` with header `{typ: "JWT", alg: "RS256", kid}`. */
  sign(claims: jose.JWTPayload): Effect.Effect<string>
}

export const makeSimSigning = Effect.fnUntraced(function*() {
  const kid = "sim-identity-platform"
  const { privateKey, publicKey } = yield* Effect.promise(() => jose.generateKeyPair("RS256", { extractable: true }))
  const jwk = yield* Effect.promise(() => jose.exportJWK(publicKey))
  return {
    jwks: { keys: [{ ...jwk, kid, use: "sig", alg: "RS256" }] },
    sign: (claims) =>
      Effect.promise(() => new jose.SignJWT(claims).setProtectedHeader({ typ: "JWT", alg: "RS256", kid }).sign(privateKey))
  } satisfies SimSigning
})
