import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger, Redacted } from "effect"
import { mkdirSync, statSync } from "node:fs"
import { AppCredentialRef, accountRef } from "../../src/graph/client/GraphSettings.ts"
import { refreshTokenPath } from "../support/legacyDataDir.ts"
import { TokenService } from "../../src/graph/auth/TokenService.ts"
import { GraphSimulator } from "../../src/simulators/graph/GraphSimulator.ts"
import { makeSelfSignedCertificate } from "../../src/simulators/graph/SelfSignedCert.ts"
import { buildGraph, clientId, clientSecret, graphLayer, settingsFor, tempDataDir, tenantId } from "./harness.ts"

const simulator = (extra: Partial<Parameters<typeof GraphSimulator.make>[0]> = {}) =>
  GraphSimulator.make({
    tenantId,
    clientId,
    clientSecrets: [{ value: clientSecret }],
    accounts: [
      { upn: "tech1@contoso.com", password: "pw-tech1" },
      { upn: "mfa@contoso.com", password: "pw-mfa", mfa: true },
      { upn: "device@contoso.com" }
    ],
    ...extra
  })

describe("sign-in against the Graph simulator", () => {
  it.live("app sign-in with a client secret yields a token the simulator accepts", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const { tokens } = yield* buildGraph(settingsFor(sim))
      const token = yield* tokens.getToken(AppCredentialRef)
      const principal = yield* sim.state.authenticate(
        (yield* Effect.succeed({ authorization: `Bearer ${Redacted.value(token)}` })) as never
      )
      assert.strictEqual(principal.kind, "app")
      assert.strictEqual((yield* sim.counters).tokensIssued, 1)
    }).pipe(Effect.scoped))

  it.live("app sign-in with a certificate (PS256 client assertion)", () =>
    Effect.gen(function*() {
      const cert = yield* makeSelfSignedCertificate()
      const sim = yield* simulator({ certificatePem: cert.certificatePem })
      const settings = settingsFor(sim, {
        app: { _tag: "Certificate", certificatePem: cert.certificatePem, privateKeyPem: Redacted.make(cert.privateKeyPem) }
      })
      const { tokens } = yield* buildGraph(settings)
      const token = yield* tokens.getToken(AppCredentialRef)
      assert.isTrue(Redacted.value(token).startsWith("sim-at-"))

      // A different key pair for the same registration is refused with the typed error.
      const other = yield* makeSelfSignedCertificate()
      const wrong = settingsFor(sim, {
        app: { _tag: "Certificate", certificatePem: other.certificatePem, privateKeyPem: Redacted.make(other.privateKeyPem) }
      })
      const error = yield* TokenService.pipe(
        Effect.flatMap((service) => service.getToken(AppCredentialRef)),
        Effect.provide(graphLayer(wrong)),
        Effect.flip
      )
      assert.strictEqual(error.reason, "WrongSecret")
      assert.strictEqual(error.code, "700027")
    }).pipe(Effect.scoped))

  it.live("wrong secret → WrongSecret with a fix-it message", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const settings = settingsFor(sim, { app: { _tag: "ClientSecret", secret: Redacted.make("not-the-secret") } })
      const error = yield* TokenService.pipe(
        Effect.flatMap((service) => service.getToken(AppCredentialRef)),
        Effect.provide(graphLayer(settings)),
        Effect.flip
      )
      assert.strictEqual(error._tag, "AuthError")
      assert.strictEqual(error.reason, "WrongSecret")
      assert.strictEqual(error.code, "7000215")
      assert.include(error.message, "Certificates & secrets")
      assert.notInclude(error.message, "not-the-secret")
    }).pipe(Effect.scoped))

  it.live("expired secret, unknown tenant and unknown app are told apart", () =>
    Effect.gen(function*() {
      const sim = yield* simulator({ clientSecrets: [{ value: clientSecret, expiresAt: 0 }] })
      const attempt = (overrides: Parameters<typeof settingsFor>[1]) =>
        TokenService.pipe(
          Effect.flatMap((service) => service.getToken(AppCredentialRef)),
          Effect.provide(graphLayer(settingsFor(sim, overrides))),
          Effect.flip
        )
      assert.strictEqual((yield* attempt({})).reason, "ExpiredSecret")
      assert.strictEqual((yield* attempt({ tenantId: "contoso-wrong" })).reason, "TenantNotFound")
      assert.strictEqual((yield* attempt({ clientId: "00000000-0000-0000-0000-000000000000" })).reason, "AppNotInTenant")
    }).pipe(Effect.scoped))

  it.live("delegated password sign-in stores a rotating refresh token (0600)", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const settings = settingsFor(sim, {
        accounts: [{ name: "tech1", username: "tech1@contoso.com", flow: "password", password: Redacted.make("pw-tech1") }]
      })
      const dataDir = tempDataDir()
      const { tokens } = yield* buildGraph(settings, { dataDir })
      const first = yield* tokens.getToken(accountRef("tech1"))
      // Where the connector has always kept it (tenant default's files, no state key: as before the state store).
      const path = refreshTokenPath(dataDir, "tech1")
      assert.strictEqual(statSync(path).mode & 0o777, 0o600)
      const { readFileSync } = yield* Effect.promise(() => import("node:fs"))
      const before = readFileSync(path, "utf8")
      yield* tokens.invalidate(accountRef("tech1"))
      const second = yield* tokens.getToken(accountRef("tech1"))
      assert.notStrictEqual(Redacted.value(first), Redacted.value(second))
      assert.notStrictEqual(readFileSync(path, "utf8"), before, "the refresh token was rotated and stored")
      const principal = yield* sim.state.authenticate({ authorization: `Bearer ${Redacted.value(second)}` } as never)
      assert.strictEqual(principal.upn, "tech1@contoso.com")
    }).pipe(Effect.scoped))

  it.live("a refresh token that cannot be stored is logged, and the running connector keeps signing in with it", () => {
    const lines: Array<string> = []
    const capture = Logger.map(Logger.formatJson, (line) => void lines.push(line))
    return Effect.gen(function*() {
      const sim = yield* simulator()
      const settings = settingsFor(sim, {
        accounts: [{ name: "tech1", username: "tech1@contoso.com", flow: "password", password: Redacted.make("pw-tech1") }]
      })
      const dataDir = tempDataDir()
      // A directory where the store's temporary file goes: every store of the token fails, reading finds none (a real
      // failure of the files, as a full disk would be).
      mkdirSync(`${refreshTokenPath(dataDir, "tech1")}.${process.pid}.tmp`, { recursive: true, mode: 0o700 })
      const { tokens } = yield* buildGraph(settings, { dataDir })
      const first = yield* tokens.getToken(accountRef("tech1"))
      assert.isTrue(lines.some((line) => line.includes("Could not store the refresh token of account:tech1")), lines.join("\n"))
      yield* tokens.invalidate(accountRef("tech1"))
      const second = yield* tokens.getToken(accountRef("tech1"))
      assert.notStrictEqual(Redacted.value(first), Redacted.value(second))
      const grants = (yield* sim.counters).requestsByRoute
      assert.strictEqual(grants["token/password"], 1, "signed in once with the password")
      assert.strictEqual(grants["token/refresh_token"], 1, "then with the refresh token kept in memory")
    }).pipe(Effect.scoped, Effect.provide(Logger.layer([capture])))
  })

  it.live("MFA account with the password grant → MfaRequired pointing at device-code login", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const settings = settingsFor(sim, {
        accounts: [{ name: "mfa", username: "mfa@contoso.com", flow: "password", password: Redacted.make("pw-mfa") }]
      })
      const error = yield* TokenService.pipe(
        Effect.flatMap((service) => service.getToken(accountRef("mfa"))),
        Effect.provide(graphLayer(settings)),
        Effect.flip
      )
      assert.strictEqual(error.reason, "MfaRequired")
      assert.include(error.message, "login")
      const status = yield* TokenService.pipe(Effect.flatMap((service) => service.status), Effect.provide(graphLayer(settings)))
      assert.isTrue(status.some((entry) => entry.label === "account:mfa"))
    }).pipe(Effect.scoped))

  it.live("bad user password → BadUserCredentials", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const settings = settingsFor(sim, {
        accounts: [{ name: "tech1", username: "tech1@contoso.com", flow: "password", password: Redacted.make("nope") }]
      })
      const error = yield* TokenService.pipe(
        Effect.flatMap((service) => service.getToken(accountRef("tech1"))),
        Effect.provide(graphLayer(settings)),
        Effect.flip
      )
      assert.strictEqual(error.reason, "BadUserCredentials")
    }).pipe(Effect.scoped))

  it.live("device-code login end to end: pending until approved, then the account signs in from the stored token", () =>
    Effect.gen(function*() {
      const sim = yield* simulator({ deviceCodeIntervalSeconds: 1 })
      const settings = settingsFor(sim, { accounts: [{ name: "dev", username: "device@contoso.com", flow: "deviceCode" }] })
      const dataDir = tempDataDir()
      const { tokens } = yield* buildGraph(settings, { dataDir })
      const before = yield* tokens.getToken(accountRef("dev")).pipe(Effect.flip)
      assert.strictEqual(before.reason, "LoginRequired")

      let prompted = ""
      yield* tokens.deviceCodeLogin("dev", (prompt) =>
        Effect.gen(function*() {
          prompted = prompt.userCode
          assert.include(prompt.message, prompt.userCode)
          // Approve only after the connector saw authorization_pending at least once.
          yield* Effect.forkDetach(
            sim.awaitDeviceCodePoll(prompt.userCode).pipe(
              Effect.andThen(sim.approveDeviceCode(prompt.userCode, "device@contoso.com"))
            )
          )
        }))
      assert.notStrictEqual(prompted, "")
      assert.isAtLeast((yield* sim.counters).requestsByRoute.token ?? 0, 2)

      // A fresh service (a restart) signs in with the stored refresh token alone.
      const { tokens: restarted } = yield* buildGraph(settings, { dataDir })
      const token = yield* restarted.getToken(accountRef("dev"))
      const principal = yield* sim.state.authenticate({ authorization: `Bearer ${Redacted.value(token)}` } as never)
      assert.strictEqual(principal.upn, "device@contoso.com")
    }).pipe(Effect.scoped))
})
