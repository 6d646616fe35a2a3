/**
 * The identity platform's discovery documents at the simulator, in the shape recorded from login.microsoftonline.com
 * (test/fixtures/conformance/identity-discovery.json): the OpenID configuration of a tenant
 * (`/{tenant}/v2.0/.well-known/openid-configuration`), instance discovery (`/common/discovery/instance`, what MSAL
 * asks for an authority it does not know), the signing keys (`/{tenant}/discovery/v2.0/keys`) and UserInfo. Every
 * endpoint of the identity platform and of Graph in them is the simulator's, so an OIDC client that reads them talks to
 * nothing else; constants naming other services (`rbac_url`, `cloud_graph_host_name`) stay as recorded.
 */
import { Effect } from "effect"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { knownTenant } from "./IdentityRoutes.ts"
import { SimHttpError, SimState } from "./SimState.ts"
import { issuerOf, pairwiseSubject } from "./TokenAnswers.ts"
import { errorResponse, fail, failures } from "./TokenErrors.ts"

/** The real platform lets clients cache its metadata for a day. */
const cacheable = { "Cache-Control": "max-age=86400, private" }

export const openIdConfiguration = (baseUrl: string, tenant: string, tenantId: string) => {
  const at = `${baseUrl}/${tenant}`
  // A tenant's document names its id; the multi-tenant aliases name the `{tenantid}` placeholder (as the real ones).
  const issuer = tenant === tenantId ? issuerOf(baseUrl, tenantId) : `${baseUrl}/{tenantid}/v2.0`
  return {
    token_endpoint: `${at}/oauth2/v2.0/token`,
    token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
    jwks_uri: `${at}/discovery/v2.0/keys`,
    response_modes_supported: ["query", "fragment", "form_post"],
    subject_types_supported: ["pairwise"],
    id_token_signing_alg_values_supported: ["RS256"],
    response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
    scopes_supported: ["openid", "profile", "email", "offline_access"],
    issuer,
    request_uri_parameter_supported: false,
    userinfo_endpoint: `${baseUrl}/oidc/userinfo`,
    authorization_endpoint: `${at}/oauth2/v2.0/authorize`,
    device_authorization_endpoint: `${at}/oauth2/v2.0/devicecode`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${at}/oauth2/v2.0/logout`,
    claims_supported: [
      "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud",
      "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"
    ],
    kerberos_endpoint: `${at}/kerberos`,
    tenant_region_scope: tenant === tenantId ? "WW" : null,
    cloud_instance_name: "microsoftonline.com",
    cloud_graph_host_name: "graph.windows.net",
    msgraph_host: new URL(baseUrl).host,
    rbac_url: "https://pas.windows.net"
  }
}

/** Instance discovery for an `authorization_endpoint` at the simulator: the simulator is its own (only) alias. */
export const instanceDiscovery = (baseUrl: string, authorizationEndpoint: URL, apiVersion: string) => {
  const host = new URL(baseUrl).host
  const tenant = authorizationEndpoint.pathname.split("/").filter((part) => part.length > 0)[0] ?? "common"
  return {
    tenant_discovery_endpoint: `${baseUrl}/${tenant}/v2.0/.well-known/openid-configuration`,
    "api-version": apiVersion,
    metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }]
  }
}

const parseUrl = (text: string | null): URL | undefined => {
  if (text === null) return undefined
  try {
    return new URL(text)
  } catch {
    return undefined
  }
}

export const DiscoveryRoutes = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const state = yield* SimState
    const refuse = (failure: Parameters<typeof errorResponse>[0]) => errorResponse(failure, state.baseUrl())

    /** A tenant-scoped document; an unknown tenant is answered as the real platform does (400 invalid_tenant). */
    const forTenant = (route: string, body: (tenant: string) => unknown) =>
      Effect.gen(function*() {
        state.count(route)
        const { tenant = "" } = yield* HttpRouter.params
        if (!knownTenant(tenant, state.tenantId)) return yield* refuse(failures.unknownTenant(tenant, "invalid_tenant"))
        return HttpServerResponse.jsonUnsafe(body(tenant), { headers: cacheable })
      })

    yield* router.add(
      "GET",
      "/:tenant/v2.0/.well-known/openid-configuration",
      forTenant("openid-configuration", (tenant) => openIdConfiguration(state.baseUrl(), tenant, state.tenantId))
    )
    yield* router.add("GET", "/:tenant/discovery/v2.0/keys", forTenant("keys", () => state.signing.jwks))

    yield* router.add("GET", "/common/discovery/instance", (request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function*() {
        state.count("discovery/instance")
        const params = new URL(request.url, state.baseUrl()).searchParams
        const endpoint = parseUrl(params.get("authorization_endpoint"))
        // The simulator vouches only for itself; anything else is an instance it does not know (AADSTS50049).
        if (endpoint === undefined || endpoint.host !== new URL(state.baseUrl()).host) {
          return yield* refuse(fail(400, "invalid_instance", 50049, "Unknown or invalid instance."))
        }
        return HttpServerResponse.jsonUnsafe(instanceDiscovery(state.baseUrl(), endpoint, params.get("api-version") ?? "1.1"), {
          headers: cacheable
        })
      }))

    // UserInfo (userinfo.md): the signed-in user's claims for a delegated token.
    yield* router.add("GET", "/oidc/userinfo", (request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function*() {
        state.count("userinfo")
        const principal = yield* state.authenticate(request.headers)
        const user = principal.userId === undefined ? undefined : state.getUser(principal.userId)
        if (user === undefined) {
          return yield* new SimHttpError({ status: 401, code: "InvalidAuthenticationToken", message: "UserInfo needs a delegated token." })
        }
        return yield* state.json(200, {
          sub: pairwiseSubject(user.id, state.clientId),
          name: user.displayName,
          ...(user.mail !== null ? { email: user.mail } : {})
        })
      }).pipe(Effect.catchTag("SimHttpError", state.errorResponse)))
  })
)
