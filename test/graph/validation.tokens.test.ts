import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { HttpRouter } from "effect/http"
import * as jose from "jose"
import { issuerTenant, ValidationTokens } from "../../src/graph/notifications/crypto/ValidationTokens.ts"
import { JWKS_PATH, JwksRoutes, SimJwks, tokenReuseSeconds } from "../../src/simulators/graph/SimJwks.ts"
import { APP_ID, buildServer, localServer, TENANT } from "./notificationsHarness.ts"

/** The simulator's JWKS on a real socket and the connector's verifier against it; the Clock is the TestClock. */
const setup = Effect.gen(function*() {
  const server = yield* buildServer(
    HttpRouter.serve(JwksRoutes, { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provideMerge(SimJwks.layer),
      Layer.provideMerge(localServer)
    )
  )
  return {
    jwks: Context.get(server.context, SimJwks),
    tokens: ValidationTokens.make({ jwksUrl: server.baseUrl + JWKS_PATH, appId: APP_ID })
  }
})

const outcome = <E>(effect: Effect.Effect<void, E>) => Effect.match(effect, { onFailure: () => "rejected", onSuccess: () => "accepted" })

describe("validation tokens (remembered once verified)", () => {
  it.effect("accepts a verified token again until it expires, and never past its expiry plus the tolerance", () =>
    Effect.gen(function*() {
      const { jwks, tokens } = yield* setup
      // Signed at the TestClock's 0: exp one hour later.
      const token = yield* jwks.validationToken(APP_ID, TENANT)
      assert.strictEqual(yield* outcome(tokens.verify([token], [TENANT])), "accepted")
      yield* TestClock.adjust("59 minutes")
      assert.strictEqual(yield* outcome(tokens.verify([token], [TENANT])), "accepted")
      // Accepted until exp + 300 s of tolerance (as jose counts it); from then on the remembered token is refused.
      yield* TestClock.adjust("359 seconds")
      assert.strictEqual(yield* outcome(tokens.verify([token], [TENANT])), "accepted")
      yield* TestClock.adjust("1 second")
      const error = yield* Effect.flip(tokens.verify([token], [TENANT]))
      assert.include(error.message, "validation token rejected")
    }).pipe(Effect.scoped))

  it.effect("knows without verifying again whether a POST's tokens were verified: never before a verify, nor past expiry", () =>
    Effect.gen(function*() {
      const { jwks, tokens } = yield* setup
      const token = yield* jwks.validationToken(APP_ID, TENANT)
      assert.isFalse(tokens.remembered([token], [TENANT], 0))
      assert.isFalse(tokens.remembered([], [], 0))
      assert.strictEqual(yield* outcome(tokens.verify([token], [TENANT])), "accepted")
      assert.isTrue(tokens.remembered([token], [TENANT], 0))
      // Another tenant's items need a token of their own.
      assert.isFalse(tokens.remembered([token], [TENANT, "99999999-0000-0000-0000-000000000000"], 0))
      // exp (3,600 s) plus the 300 s tolerance: from then on it must be verified (and is refused).
      assert.isTrue(tokens.remembered([token], [TENANT], 3_899_999))
      assert.isFalse(tokens.remembered([token], [TENANT], 3_900_000))
    }).pipe(Effect.scoped))

  it.effect("still requires a token of every tenant in the batch when the token is remembered", () =>
    Effect.gen(function*() {
      const { jwks, tokens } = yield* setup
      const token = yield* jwks.validationToken(APP_ID, TENANT)
      assert.strictEqual(yield* outcome(tokens.verify([token], [TENANT])), "accepted")
      const error = yield* Effect.flip(tokens.verify([token], [TENANT, "99999999-0000-0000-0000-000000000000"]))
      assert.include(error.message, "no validation token issued for tenant 99999999-0000-0000-0000-000000000000")
    }).pipe(Effect.scoped))

  it.effect("does not remember a token it refused: a token for another app is refused each time", () =>
    Effect.gen(function*() {
      const { jwks, tokens } = yield* setup
      const foreign = yield* jwks.validationToken("00000000-1111-2222-3333-444444444444", TENANT)
      for (let i = 0; i < 2; i++) {
        const error = yield* Effect.flip(tokens.verify([foreign], [TENANT]))
        assert.include(error.message, "validation token rejected")
      }
    }).pipe(Effect.scoped))
})

describe("validation token forms (v1 and v2)", () => {
  it.effect("accepts a v1 token (sts.windows.net, appid) and a v2 token (login.microsoftonline.com/…/v2.0, azp) for the tenant", () =>
    Effect.gen(function*() {
      const { jwks, tokens } = yield* setup
      const v1 = yield* jwks.validationToken(APP_ID, TENANT, "v1")
      const v2 = yield* jwks.validationToken(APP_ID, TENANT, "v2")
      assert.notStrictEqual(v1, v2)
      assert.strictEqual(jose.decodeJwt(v2).iss, `https://login.microsoftonline.com/${TENANT}/v2.0`)
      assert.strictEqual(yield* outcome(tokens.verify([v1], [TENANT])), "accepted")
      assert.strictEqual(yield* outcome(tokens.verify([v2], [TENANT])), "accepted")
      assert.isTrue(tokens.remembered([v2], [TENANT], 0))
      // A v2 token covers its own tenant only.
      const error = yield* Effect.flip(tokens.verify([v2], [TENANT, "99999999-0000-0000-0000-000000000000"]))
      assert.include(error.message, "no validation token issued for tenant 99999999-0000-0000-0000-000000000000")
    }).pipe(Effect.scoped))

  it("reads the tenant from either issuer form and from no other", () => {
    assert.strictEqual(issuerTenant(`https://sts.windows.net/${TENANT}/`), TENANT)
    assert.strictEqual(issuerTenant(`https://login.microsoftonline.com/${TENANT}/v2.0`), TENANT)
    assert.isUndefined(issuerTenant(`https://login.microsoftonline.com/${TENANT}/`))
    assert.isUndefined(issuerTenant(`https://evil.example/${TENANT}/v2.0`))
    assert.isUndefined(issuerTenant(`https://sts.windows.net/${TENANT}/extra/`))
    assert.isUndefined(issuerTenant(undefined))
  })
})

describe("the simulator's validation tokens", () => {
  it.effect("are one text per app and tenant for 5 minutes (signed once), and a new one after", () =>
    Effect.gen(function*() {
      const { jwks, tokens } = yield* setup
      assert.strictEqual(tokenReuseSeconds, 300)
      assert.isUndefined(jwks.signedToken(APP_ID, TENANT, 0), "none signed yet")
      const first = yield* jwks.validationToken(APP_ID, TENANT)
      assert.strictEqual(yield* jwks.validationToken(APP_ID, TENANT), first)
      // What a POST takes without an effect while the token is sent again, and nothing once it is due to be renewed.
      assert.strictEqual(jwks.signedToken(APP_ID, TENANT, 299_999), first)
      assert.isUndefined(jwks.signedToken(APP_ID, TENANT, 300_000))
      assert.isUndefined(jwks.signedToken(APP_ID, "99999999-0000-0000-0000-000000000000", 0), "another tenant's")
      const otherTenant = yield* jwks.validationToken(APP_ID, "99999999-0000-0000-0000-000000000000")
      assert.notStrictEqual(otherTenant, first)
      yield* TestClock.adjust("299 seconds")
      assert.strictEqual(yield* jwks.validationToken(APP_ID, TENANT), first)
      yield* TestClock.adjust("1 second")
      const next = yield* jwks.validationToken(APP_ID, TENANT)
      assert.notStrictEqual(next, first)
      assert.strictEqual(jose.decodeJwt(next).iat, 300)
      assert.strictEqual(yield* outcome(tokens.verify([next], [TENANT])), "accepted")
    }).pipe(Effect.scoped))
})

describe("priming the verifier (WarmUp.ts)", () => {
  it.effect("imports the signing keys when it fetches them: a token verified afterwards imports no key", () =>
    Effect.gen(function*() {
      const { jwks, tokens } = yield* setup
      const token = yield* jwks.validationToken(APP_ID, TENANT)
      const subtle = globalThis.crypto.subtle
      const original = subtle.importKey.bind(subtle)
      let imports = 0
      subtle.importKey = ((...args: Parameters<typeof subtle.importKey>) => {
        imports++
        return original(...args)
      }) as typeof subtle.importKey
      try {
        yield* tokens.prime
        const byPrime = imports
        assert.isAbove(byPrime, 0, "the key set's key was imported while priming")
        assert.strictEqual(yield* outcome(tokens.verify([token], [TENANT])), "accepted")
        assert.strictEqual(imports, byPrime, "the first token's check imported no key of its own")
      } finally {
        subtle.importKey = original
      }
    }).pipe(Effect.scoped))
})
