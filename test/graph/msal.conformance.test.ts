/**
 * Microsoft's own identity client, @azure/msal-node, runs its normal flows against the Graph simulator with its
 * default behaviour: it is told only the authority, that the simulator's host is a known authority, and (process-wide,
 * tlsHarness.ts) to trust the test CA. It discovers every endpoint from the simulator's OpenID configuration.
 */
import { ConfidentialClientApplication, InteractionRequiredAuthError, PublicClientApplication, ServerError } from "@azure/msal-node"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { createHash, X509Certificate } from "node:crypto"
import { readFileSync } from "node:fs"
import { simUserId } from "../../src/simulators/graph/GraphSimulator.ts"
import { clientId, clientSecret, tenantId } from "./harness.ts"
import { msalAuthority, startTlsSimulator, technicalAccount } from "./tlsHarness.ts"

const graphDefault = "https://graph.microsoft.com/.default"
const presenceScope = "https://graph.microsoft.com/Presence.Read.All"

const promise = <A>(run: () => Promise<A>) => Effect.promise(run)
/** The library's failure as a value (it rejects with its own error classes). */
const failure = (run: () => Promise<unknown>) => Effect.promise(() => run().then(() => undefined, (error: unknown) => error))

const getStatus = (url: string, token: string) =>
  promise(async () => (await fetch(url, { headers: { authorization: `Bearer ${token}` } })).status)

const tokenRequests = (sim: { readonly counters: Effect.Effect<{ readonly requestsByRoute: Readonly<Record<string, number>> }> }) =>
  Effect.map(sim.counters, (counters) => counters.requestsByRoute["token"] ?? 0)

describe("@azure/msal-node against the Graph simulator", () => {
  it.live("client credentials with a secret: endpoints come from the discovery document, the token works, the second call is served from MSAL's cache", () =>
    Effect.gen(function*() {
      const { sim } = yield* startTlsSimulator()
      const app = new ConfidentialClientApplication({ auth: { clientId, clientSecret, ...msalAuthority(sim.url) } })
      const first = yield* promise(() => app.acquireTokenByClientCredential({ scopes: [graphDefault] }))
      assert.isNotNull(first)
      assert.strictEqual(yield* getStatus(`${sim.url}/v1.0/users`, first!.accessToken), 200)
      const second = yield* promise(() => app.acquireTokenByClientCredential({ scopes: [graphDefault] }))
      assert.strictEqual(second!.accessToken, first!.accessToken)
      assert.isTrue(second!.fromCache)
      const counters = yield* sim.counters
      assert.strictEqual(counters.requestsByRoute["openid-configuration"], 1)
      assert.strictEqual(counters.requestsByRoute["token"], 1)

      const wrong = new ConfidentialClientApplication({ auth: { clientId, clientSecret: "not-the-secret", ...msalAuthority(sim.url) } })
      const refused = yield* failure(() => wrong.acquireTokenByClientCredential({ scopes: [graphDefault] }))
      assert.instanceOf(refused, ServerError)
      assert.strictEqual((refused as ServerError).errorCode, "invalid_client")
      assert.strictEqual(String((refused as ServerError).errorNo), "7000215")
    }).pipe(Effect.scoped))

  it.live("client credentials with a certificate: MSAL's PS256 assertion (x5t#S256) is accepted; a certificate that is not registered is refused", () =>
    Effect.gen(function*() {
      const { sim, appCertificate } = yield* startTlsSimulator()
      const thumbprintSha256 = createHash("sha256").update(new X509Certificate(appCertificate.certificatePem).raw).digest("hex")
      const app = new ConfidentialClientApplication({
        auth: { clientId, clientCertificate: { thumbprintSha256, privateKey: appCertificate.privateKeyPem }, ...msalAuthority(sim.url) }
      })
      const result = yield* promise(() => app.acquireTokenByClientCredential({ scopes: [graphDefault] }))
      assert.strictEqual(yield* getStatus(`${sim.url}/v1.0/users`, result!.accessToken), 200)

      const stranger = yield* startTlsSimulator().pipe(Effect.map((other) => other.appCertificate))
      const unregistered = new ConfidentialClientApplication({
        auth: {
          clientId,
          clientCertificate: {
            thumbprintSha256: createHash("sha256").update(new X509Certificate(stranger.certificatePem).raw).digest("hex"),
            privateKey: stranger.privateKeyPem
          },
          ...msalAuthority(sim.url)
        }
      })
      const refused = yield* failure(() => unregistered.acquireTokenByClientCredential({ scopes: [graphDefault] }))
      assert.instanceOf(refused, ServerError)
      assert.strictEqual(String((refused as ServerError).errorNo), "700027")
    }).pipe(Effect.scoped))

  it.live("password grant with MSAL's scope (resource permission + openid profile offline_access): an account, the scopes in Graph's own form, a working token", () =>
    Effect.gen(function*() {
      const { sim } = yield* startTlsSimulator()
      const app = new PublicClientApplication({ auth: { clientId, ...msalAuthority(sim.url) } })
      const result = yield* promise(() =>
        app.acquireTokenByUsernamePassword({ scopes: [presenceScope], username: technicalAccount.upn, password: technicalAccount.password })
      )
      assert.isNotNull(result)
      assert.strictEqual(result!.account?.username, technicalAccount.upn)
      assert.strictEqual(result!.account?.tenantId, tenantId)
      assert.include(result!.scopes, presenceScope)
      assert.isTrue(result!.scopes.every((scope) => !scope.includes("127.0.0.1")), result!.scopes.join(" "))
      assert.strictEqual(yield* getStatus(`${sim.url}/v1.0/users/${simUserId(1)}/presence`, result!.accessToken), 200)

      const badPassword = yield* failure(() =>
        app.acquireTokenByUsernamePassword({ scopes: [presenceScope], username: technicalAccount.upn, password: "wrong" })
      )
      assert.instanceOf(badPassword, ServerError)
      assert.strictEqual((badPassword as ServerError).errorCode, "invalid_grant")
      assert.strictEqual(String((badPassword as ServerError).errorNo), "50126")

      // A permission nobody consented to: consent_required, which MSAL reports as interaction required.
      const notConsented = yield* failure(() =>
        app.acquireTokenByUsernamePassword({
          scopes: ["https://graph.microsoft.com/Mail.Read"],
          username: technicalAccount.upn,
          password: technicalAccount.password
        })
      )
      assert.instanceOf(notConsented, InteractionRequiredAuthError)
      assert.strictEqual((notConsented as InteractionRequiredAuthError).subError, "consent_required")
    }).pipe(Effect.scoped))

  it.live("device code: MSAL polls while the code is pending, the code is approved through the control API, the account signs in", () =>
    Effect.gen(function*() {
      const { sim } = yield* startTlsSimulator()
      const app = new PublicClientApplication({ auth: { clientId, ...msalAuthority(sim.url) } })
      const userCode = yield* Deferred.make<string>()
      const login = yield* promise(() =>
        app.acquireTokenByDeviceCode({
          scopes: [graphDefault],
          deviceCodeCallback: (response) => void Effect.runSync(Deferred.succeed(userCode, response.userCode))
        })
      ).pipe(Effect.forkChild)
      const code = yield* Deferred.await(userCode)
      yield* sim.awaitDeviceCodePoll(code)
      const approval = yield* promise(() =>
        fetch(`${sim.url}/_sim/devicecodes/${code}/approve`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ upn: technicalAccount.upn })
        }).then((response) => response.status)
      )
      assert.strictEqual(approval, 200)
      const result = yield* Fiber.join(login)
      assert.strictEqual(result!.account?.username, technicalAccount.upn)
      assert.include(result!.scopes, graphDefault)
      assert.strictEqual(yield* getStatus(`${sim.url}/v1.0/users`, result!.accessToken), 200)
    }).pipe(Effect.scoped))

  it.live("acquireTokenSilent: served from MSAL's cache, then (forceRefresh) through the rotating refresh token, twice", () =>
    Effect.gen(function*() {
      const { sim } = yield* startTlsSimulator()
      const app = new PublicClientApplication({ auth: { clientId, ...msalAuthority(sim.url) } })
      const signedIn = yield* promise(() =>
        app.acquireTokenByUsernamePassword({ scopes: [graphDefault], username: technicalAccount.upn, password: technicalAccount.password })
      )
      const [account] = yield* promise(() => app.getTokenCache().getAllAccounts())
      assert.isDefined(account)
      const before = yield* tokenRequests(sim)
      const cached = yield* promise(() => app.acquireTokenSilent({ account: account!, scopes: [graphDefault] }))
      assert.strictEqual(cached.accessToken, signedIn!.accessToken)
      assert.isTrue(cached.fromCache)
      assert.strictEqual(yield* tokenRequests(sim), before)

      const refreshed = yield* promise(() => app.acquireTokenSilent({ account: account!, scopes: [graphDefault], forceRefresh: true }))
      assert.isFalse(refreshed.fromCache)
      assert.notStrictEqual(refreshed.accessToken, signedIn!.accessToken)
      assert.strictEqual(yield* getStatus(`${sim.url}/v1.0/users`, refreshed.accessToken), 200)
      // The refresh token was rotated: MSAL must have kept the new one for this to work.
      const again = yield* promise(() => app.acquireTokenSilent({ account: account!, scopes: [graphDefault], forceRefresh: true }))
      assert.strictEqual(yield* getStatus(`${sim.url}/v1.0/users`, again.accessToken), 200)
      assert.strictEqual(yield* tokenRequests(sim), before + 2)
    }).pipe(Effect.scoped))

  it.live("the simulator's instance discovery answer is what MSAL accepts as cloud discovery metadata (no knownAuthorities)", () =>
    Effect.gen(function*() {
      const { sim } = yield* startTlsSimulator()
      const authorize = `${sim.url}/${tenantId}/oauth2/v2.0/authorize`
      const discovery = yield* promise(() =>
        fetch(`${sim.url}/common/discovery/instance?api-version=1.1&authorization_endpoint=${encodeURIComponent(authorize)}`).then((r) => r.text())
      )
      const app = new ConfidentialClientApplication({
        auth: { clientId, clientSecret, authority: `${sim.url}/${tenantId}`, cloudDiscoveryMetadata: discovery }
      })
      const result = yield* promise(() => app.acquireTokenByClientCredential({ scopes: [graphDefault] }))
      assert.strictEqual(yield* getStatus(`${sim.url}/v1.0/users`, result!.accessToken), 200)
      // The same shape as the platform's recorded answer.
      const recorded = JSON.parse(readFileSync(new URL("../fixtures/conformance/identity-discovery.json", import.meta.url), "utf8"))
      assert.deepStrictEqual(Object.keys(JSON.parse(discovery)).sort(), Object.keys(recorded.instanceDiscovery.body).sort())
    }).pipe(Effect.scoped))
})
