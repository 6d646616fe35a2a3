/**
 * The certificate credential's client assertion (protocols.md §1.1): a JWT signed PS256 whose header names the
 * certificate by `x5t#S256`, with aud = the token URL, iss = sub = the client id, and a lifetime of at most 10 minutes.
 */
import { Clock, Effect, Redacted } from "effect"
import { SignJWT } from "jose"
import { createHash, createPrivateKey, randomUUID, X509Certificate } from "node:crypto"

/** base64url SHA-256 of the certificate's DER encoding. */
export const certificateThumbprintS256 = (certificatePem: string): string =>
  createHash("sha256").update(new X509Certificate(certificatePem).raw).digest("base64url")

export const makeClientAssertion = Effect.fnUntraced(function*(options: {
  readonly clientId: string
  readonly tokenUrl: string
  readonly certificatePem: string
  readonly privateKeyPem: Redacted.Redacted<string>
}) {
  const nowSeconds = Math.floor((yield* Clock.currentTimeMillis) / 1000)
  const jwt = yield* Effect.tryPromise({
    try: () =>
      new SignJWT({})
        .setProtectedHeader({ alg: "PS256", typ: "JWT", "x5t#S256": certificateThumbprintS256(options.certificatePem) })
        .setAudience(options.tokenUrl)
        .setIssuer(options.clientId)
        .setSubject(options.clientId)
        .setJti(randomUUID())
        .setNotBefore(nowSeconds)
        .setIssuedAt(nowSeconds)
        .setExpirationTime(nowSeconds + 600)
        .sign(createPrivateKey(Redacted.value(options.privateKeyPem))),
    // The cause may quote key material; keep only its class name.
    catch: (cause) => cause instanceof Error ? cause.name : "Error"
  })
  return Redacted.make(jwt)
})
