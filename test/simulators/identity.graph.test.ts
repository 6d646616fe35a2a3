/**
 * The simulated identity platform over real HTTP: its discovery documents and token answers have the shape of the
 * platform's recorded ones (test/fixtures/conformance/identity-discovery.json), an ID token verifies the way an OIDC
 * client checks it (JWKS from jwks_uri, issuer, audience), offline_access / openid / client_info decide what an answer
 * carries, and refusals carry the platform's codes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { createRemoteJWKSet, jwtVerify } from "jose"
import { readFileSync } from "node:fs"
import { generateUsers, GraphSimulator, type GraphSimulatorHandle } from "../../src/simulators/graph/GraphSimulator.ts"
import { assertSameShape } from "../support/shape.ts"

const tenantId = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
const clientId = "12345678-1234-1234-1234-123456789abc"
const secret = "identity-test-secret"
const account = { upn: "tech@contoso.com", password: "pw" }

interface Recorded {
  readonly body: Record<string, unknown>
}
const recorded: Record<string, Recorded> = JSON.parse(
  readFileSync(new URL("../fixtures/conformance/identity-discovery.json", import.meta.url), "utf8")
)

const start = GraphSimulator.make({
  tenantId,
  clientId,
  clientSecrets: [{ value: secret }],
  accounts: [account],
  users: generateUsers(2)
})

const getJson = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url)
    return { status: response.status, body: (await response.json()) as Record<string, any> }
  })

const token = (sim: GraphSimulatorHandle, form: Record<string, string>, tenant = tenantId) =>
  Effect.promise(async () => {
    const response = await fetch(`${sim.url}/${tenant}/oauth2/v2.0/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id: clientId, ...form }).toString()
    })
    return { status: response.status, body: (await response.json()) as Record<string, any> }
  })

const password = (sim: GraphSimulatorHandle, scope: string, extra: Record<string, string> = {}) =>
  token(sim, { grant_type: "password", username: account.upn, password: account.password, scope, ...extra })

describe("simulated identity platform (HTTP)", () => {
  it.live("OpenID configuration of the tenant and of organizations: the recorded shape, every endpoint at the simulator", () =>
    Effect.gen(function*() {
      const sim = yield* start
      const tenantDoc = yield* getJson(`${sim.url}/${tenantId}/v2.0/.well-known/openid-configuration`)
      assert.strictEqual(tenantDoc.status, 200)
      assertSameShape(recorded.openIdConfigurationTenant!.body, tenantDoc.body)
      assert.strictEqual(tenantDoc.body.issuer, `${sim.url}/${tenantId}/v2.0`)
      assert.strictEqual(tenantDoc.body.token_endpoint, `${sim.url}/${tenantId}/oauth2/v2.0/token`)
      assert.strictEqual(tenantDoc.body.device_authorization_endpoint, `${sim.url}/${tenantId}/oauth2/v2.0/devicecode`)
      // rbac_url names Azure's role service, not an endpoint of the identity platform or Graph: kept as recorded.
      for (const [key, value] of Object.entries(tenantDoc.body)) {
        if (typeof value === "string" && value.startsWith("http") && key !== "rbac_url") {
          assert.isTrue(value.startsWith(sim.url), `${key} = ${value}`)
        }
      }
      const organizations = yield* getJson(`${sim.url}/organizations/v2.0/.well-known/openid-configuration`)
      assertSameShape(recorded.openIdConfigurationOrganizations!.body, organizations.body)
      assert.strictEqual(organizations.body.issuer, `${sim.url}/{tenantid}/v2.0`)
      assert.isNull(organizations.body.tenant_region_scope)

      const unknown = yield* getJson(`${sim.url}/not-a-tenant/v2.0/.well-known/openid-configuration`)
      assert.strictEqual(unknown.status, 400)
      assert.strictEqual(unknown.body.error, "invalid_tenant")
      assert.deepStrictEqual(unknown.body.error_codes, [90002])
    }).pipe(Effect.scoped))

  it.live("instance discovery: the recorded shape for an authority at the simulator, invalid_instance for any other", () =>
    Effect.gen(function*() {
      const sim = yield* start
      const authorize = encodeURIComponent(`${sim.url}/${tenantId}/oauth2/v2.0/authorize`)
      const known = yield* getJson(`${sim.url}/common/discovery/instance?api-version=1.1&authorization_endpoint=${authorize}`)
      assert.strictEqual(known.status, 200)
      assertSameShape(recorded.instanceDiscovery!.body, known.body)
      assert.strictEqual(known.body.tenant_discovery_endpoint, `${sim.url}/${tenantId}/v2.0/.well-known/openid-configuration`)
      assert.deepStrictEqual(known.body.metadata[0].aliases, [new URL(sim.url).host])
      const other = encodeURIComponent("https://login.contoso.net/common/oauth2/v2.0/authorize")
      const unknown = yield* getJson(`${sim.url}/common/discovery/instance?api-version=1.1&authorization_endpoint=${other}`)
      assert.strictEqual(unknown.status, 400)
      assertSameShape(recorded.instanceDiscoveryUnknown!.body, unknown.body)
      assert.deepStrictEqual(unknown.body.error_codes, [50049])
    }).pipe(Effect.scoped))

  it.live("password grant: refresh token only with offline_access, ID token only with openid (verifiable against jwks_uri), client_info on request", () =>
    Effect.gen(function*() {
      const sim = yield* start
      const full = yield* password(sim, "https://graph.microsoft.com/Presence.Read.All openid profile offline_access", { client_info: "1" })
      assert.strictEqual(full.status, 200)
      assertSameShape(recorded.tokenDelegatedNamedPermission!.body, full.body, "$", ["foci"])
      assert.include(full.body.scope.split(" "), "https://graph.microsoft.com/Presence.Read.All")
      assert.notInclude(full.body.scope, sim.url)
      const clientInfo = JSON.parse(Buffer.from(full.body.client_info, "base64url").toString("utf8"))
      assert.strictEqual(clientInfo.utid, tenantId)

      const doc = (yield* getJson(`${sim.url}/${tenantId}/v2.0/.well-known/openid-configuration`)).body
      const verified = yield* Effect.promise(() =>
        jwtVerify(full.body.id_token, createRemoteJWKSet(new URL(doc.jwks_uri)), { issuer: doc.issuer, audience: clientId })
      )
      assert.strictEqual(verified.payload.preferred_username, account.upn)
      assert.strictEqual(verified.payload.tid, tenantId)

      const noOffline = yield* password(sim, "https://graph.microsoft.com/.default openid")
      assert.strictEqual(noOffline.status, 200)
      assert.isUndefined(noOffline.body.refresh_token)
      assert.isString(noOffline.body.id_token)
      assert.isUndefined(noOffline.body.client_info)
      const noOpenid = yield* password(sim, "User.Read.All OFFLINE_ACCESS")
      assert.isString(noOpenid.body.refresh_token)
      assert.isUndefined(noOpenid.body.id_token)
    }).pipe(Effect.scoped))

  it.live("refresh with Graph's .default: the recorded shape, .default echoed last, the refresh token rotates", () =>
    Effect.gen(function*() {
      const sim = yield* start
      const first = yield* password(sim, "https://graph.microsoft.com/.default offline_access")
      const refreshed = yield* token(sim, {
        grant_type: "refresh_token",
        refresh_token: first.body.refresh_token,
        scope: "https://graph.microsoft.com/.default offline_access"
      })
      assert.strictEqual(refreshed.status, 200)
      assertSameShape(recorded.tokenRefreshGraphDefault!.body, refreshed.body)
      assert.strictEqual(refreshed.body.scope.split(" ").at(-1), "https://graph.microsoft.com/.default")
      const reused = yield* token(sim, { grant_type: "refresh_token", refresh_token: first.body.refresh_token })
      assert.deepStrictEqual(reused.body.error_codes, [70008])
    }).pipe(Effect.scoped))

  it.live("refusals carry the platform's codes: unknown resource, .default with named permissions, not consented, client credentials with a permission, no scope", () =>
    Effect.gen(function*() {
      const sim = yield* start
      const cases: ReadonlyArray<readonly [Effect.Effect<{ status: number; body: Record<string, any> }>, number, string]> = [
        [password(sim, `${sim.url}/.default offline_access`), 500011, "invalid_resource"],
        [password(sim, "https://graph.microsoft.com/.default https://graph.microsoft.com/User.Read"), 70011, "invalid_scope"],
        [password(sim, "https://graph.microsoft.com/Mail.Read openid"), 65001, "invalid_grant"],
        [token(sim, { grant_type: "client_credentials", client_secret: secret, scope: "https://graph.microsoft.com/User.Read.All" }), 1002012, "invalid_scope"],
        [token(sim, { grant_type: "client_credentials", client_secret: secret }), 900144, "invalid_request"]
      ]
      for (const [request, code, error] of cases) {
        const answer = yield* request
        assert.strictEqual(answer.status, 400, JSON.stringify(answer.body))
        assert.strictEqual(answer.body.error, error)
        assert.deepStrictEqual(answer.body.error_codes, [code])
        assert.match(answer.body.error_description, new RegExp(`^AADSTS${code}: `))
        assert.strictEqual(answer.body.error_uri, `${sim.url}/error?code=${code}`)
      }
      const consent = yield* password(sim, "Mail.Read")
      assert.strictEqual(consent.body.suberror, "consent_required")
    }).pipe(Effect.scoped))

  it.live("device code: the recorded answers (code, pending) and MSAL's short grant name", () =>
    Effect.gen(function*() {
      const sim = yield* start
      const started = yield* Effect.promise(async () => {
        const response = await fetch(`${sim.url}/${tenantId}/oauth2/v2.0/devicecode`, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ client_id: clientId, scope: "https://graph.microsoft.com/.default openid profile offline_access" })
        })
        return (await response.json()) as Record<string, any>
      })
      assertSameShape(recorded.deviceCodeResponse!.body, started)
      const pending = yield* token(sim, { grant_type: "device_code", device_code: started.device_code })
      assertSameShape(recorded.deviceCodePending!.body, pending.body)
      assert.strictEqual(pending.body.error, "authorization_pending")
      assert.isTrue(yield* sim.approveDeviceCode(started.user_code, account.upn))
      const done = yield* token(sim, { grant_type: "device_code", device_code: started.device_code })
      assert.strictEqual(done.status, 200)
      assert.isString(done.body.refresh_token)
      assert.isString(done.body.id_token)
    }).pipe(Effect.scoped))

  it.live("UserInfo answers for a delegated token", () =>
    Effect.gen(function*() {
      const sim = yield* start
      const signedIn = yield* password(sim, "openid profile email")
      const info = yield* Effect.promise(async () => {
        const response = await fetch(`${sim.url}/oidc/userinfo`, { headers: { authorization: `Bearer ${signedIn.body.access_token}` } })
        return { status: response.status, body: (await response.json()) as Record<string, any> }
      })
      assert.strictEqual(info.status, 200)
      assert.strictEqual(info.body.name, "tech")
      assert.isString(info.body.sub)
    }).pipe(Effect.scoped))
})
