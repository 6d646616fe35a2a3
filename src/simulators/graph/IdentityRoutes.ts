/**
 * The identity platform endpoints of the simulator (protocols.md §1.1): `/{tenant}/oauth2/v2.0/token` for client
 * credentials (secret or PS256 assertion checked against the registered certificate), password, device code and
 * rotating refresh tokens, and `/{tenant}/oauth2/v2.0/devicecode`. Scopes are read as the real platform reads them
 * (SimScopes); refusals carry its codes and wording (TokenErrors); answers are built in TokenAnswers.
 */
import { Clock, Deferred, Effect } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse, UrlParams } from "effect/http"
import { decodeProtectedHeader, importX509, jwtVerify } from "jose"
import { createHash, X509Certificate } from "node:crypto"
import { type DelegatedScopes, parseClientCredentials, parseDelegated, type ScopeResult } from "./SimScopes.ts"
import { type Principal, SimState } from "./SimState.ts"
import { appTokenAnswer, delegatedTokenAnswer } from "./TokenAnswers.ts"
import { errorResponse, fail, failures, scopeFailure, type TokenFailure } from "./TokenErrors.ts"

export interface SimClientSecret {
  readonly value: string
  /** Epoch milliseconds; after it the secret is answered with AADSTS7000222. */
  readonly expiresAt?: number | undefined
}

export interface IdentityOptions {
  readonly clientSecrets: ReadonlyArray<SimClientSecret>
  /** Further app registrations of the tenant: client credentials with one of their secrets. */
  readonly extraApps?: ReadonlyArray<{ readonly clientId: string; readonly clientSecrets: ReadonlyArray<SimClientSecret> }> | undefined
  readonly certificatePem?: string | undefined
  /** "Allow public client flows" on the app registration (password and device code); default true. */
  readonly allowPublicClientFlows: boolean
  readonly deviceCodeIntervalSeconds: number
  readonly deviceCodeExpiresInSeconds: number
}

type Granted =
  | { readonly kind: "app"; readonly principal: Principal }
  | { readonly kind: "delegated"; readonly principal: Principal; readonly scopes: DelegatedScopes }

/** The tenants a request may name: the simulated one and the multi-tenant aliases. */
export const knownTenant = (tenant: string, tenantId: string): boolean =>
  tenant === tenantId || tenant === "organizations" || tenant === "common"

/** What the endpoints work with: the options, the simulator's state and the registered certificate's key. */
interface Identity {
  readonly options: IdentityOptions
  readonly state: SimState["Service"]
  readonly thumbprint: string | undefined
  readonly publicKey: Awaited<ReturnType<typeof importX509>> | undefined
}

type Form = Record<string, string | undefined>

export const IdentityRoutes = (options: IdentityOptions) =>
  HttpRouter.use((router) =>
    Effect.gen(function*() {
      const state = yield* SimState
      const identity: Identity = {
        options,
        state,
        thumbprint: options.certificatePem !== undefined
          ? createHash("sha256").update(new X509Certificate(options.certificatePem).raw).digest("base64url")
          : undefined,
        publicKey: options.certificatePem !== undefined
          ? yield* Effect.promise(() => importX509(options.certificatePem!, "PS256"))
          : undefined
      }
      yield* router.add("POST", "/:tenant/oauth2/v2.0/token", endpoint(identity, "token", (tenant, form) => tokenAnswer(identity, tenant, form)))
      yield* router.add("POST", "/:tenant/oauth2/v2.0/devicecode", endpoint(identity, "devicecode", (tenant, form) => deviceCodeAnswer(identity, tenant, form)))
    })
  )

const scopesOr = <A>(identity: Identity, result: ScopeResult<A>): A | TokenFailure =>
  result._tag === "Ok" ? result.value : scopeFailure(result.problem, { clientId: identity.state.clientId, tenantId: identity.state.tenantId })

const refuse = (identity: Identity, failure: TokenFailure) => errorResponse(failure, identity.state.baseUrl())

// Learn certificate-credentials.md: PS256 with x5t#S256, aud = the token URL, iss = sub = client id, jti; the
// platform puts no limit on exp and does not require iat.
const verifyAssertion = Effect.fnUntraced(function*({ publicKey, state, thumbprint }: Identity, assertion: string, tenant: string) {
  if (publicKey === undefined) return false
  const header = yield* Effect.try(() => decodeProtectedHeader(assertion)).pipe(Effect.option)
  if (header._tag === "None" || header.value["x5t#S256"] !== thumbprint || header.value.alg !== "PS256") return false
  const now = yield* Clock.currentTimeMillis
  const verified = yield* Effect.tryPromise(() =>
    jwtVerify(assertion, publicKey, {
      algorithms: ["PS256"],
      issuer: state.clientId,
      subject: state.clientId,
      audience: `${state.baseUrl()}/${tenant}/oauth2/v2.0/token`,
      requiredClaims: ["exp", "jti"],
      // Clients set nbf from their own clock (MSAL Node rounds it up to the next second), and the identity
      // platform accepts some skew: without a tolerance, an assertion made in the same second is refused.
      clockTolerance: 300,
      currentDate: new Date(now)
    })
  ).pipe(Effect.option)
  return verified._tag === "Some"
})

const delegated = (state: SimState["Service"], upn: string): Principal | undefined => {
  const user = state.findUserByUpn(upn)
  return user === undefined
    ? undefined
    : { kind: "delegated", appId: state.clientId, tenantId: state.tenantId, upn: user.userPrincipalName, userId: user.id }
}

const clientCredentials = Effect.fnUntraced(function*(identity: Identity, tenant: string, form: Form) {
  const { options, state } = identity
  const scope = scopesOr(identity, parseClientCredentials(form.scope))
  if (scope !== undefined) return scope
  const now = yield* Clock.currentTimeMillis
  const app: Granted = { kind: "app", principal: { kind: "app", appId: state.clientId, tenantId: state.tenantId } }
  if (form.client_secret !== undefined) {
    const secret = options.clientSecrets.find((candidate) => candidate.value === form.client_secret)
    if (secret === undefined) {
      return fail(401, "invalid_client", 7000215, `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${state.clientId}'.`)
    }
    if (secret.expiresAt !== undefined && now >= secret.expiresAt) {
      return fail(401, "invalid_client", 7000222, `The provided client secret keys for app '${state.clientId}' are expired.`)
    }
    return app
  }
  if (form.client_assertion !== undefined) {
    if (form.client_assertion_type !== "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
      return fail(400, "invalid_request", 90014, "The request body must contain the following parameter: 'client_assertion_type'.")
    }
    if (!(yield* verifyAssertion(identity, form.client_assertion, tenant))) {
      return fail(401, "invalid_client", 700027, "The certificate with identifier used to sign the client assertion is not registered on application, or the signature is invalid.")
    }
    return app
  }
  return failures.noClientCredential()
})

const password = (identity: Identity, form: Form): Granted | TokenFailure => {
  const { state } = identity
  const scopes = scopesOr(identity, parseDelegated(form.scope))
  if ("status" in scopes) return scopes
  const user = state.findUserByUpn(form.username ?? "")
  if (user === undefined || user.password === undefined || user.password !== form.password) return failures.badCredentials()
  if (user.mfa === true) {
    return fail(400, "invalid_grant", 50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the resource.")
  }
  return { kind: "delegated", principal: delegated(state, user.userPrincipalName)!, scopes }
}

const refresh = (identity: Identity, form: Form): Granted | TokenFailure => {
  // Checked before the token is redeemed, so a refused scope does not use the refresh token up.
  const asked = form.scope === undefined ? undefined : scopesOr(identity, parseDelegated(form.scope))
  if (asked !== undefined && "status" in asked) return asked
  const grant = identity.state.redeemRefreshToken(form.refresh_token ?? "")
  if (grant === undefined) {
    return fail(400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
  }
  return { kind: "delegated", principal: grant.principal, scopes: asked ?? grant.scopes }
}

const deviceCode = Effect.fnUntraced(function*(state: SimState["Service"], form: Form) {
  const now = yield* Clock.currentTimeMillis
  const entry = state.findDeviceCode(form.device_code ?? "")
  if (entry === undefined) return fail(400, "invalid_grant", 70000, "The provided value for the 'device_code' is not valid.")
  if (now >= entry.expiresAt) {
    state.consumeDeviceCode(entry.deviceCode)
    return fail(400, "expired_token", 70020, "The provided value for the input parameter 'device_code' is not valid. This device code has expired.")
  }
  if (entry.approvedUpn === undefined) {
    yield* Deferred.succeed(entry.polled, undefined)
    return fail(400, "authorization_pending", 70016, "OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
  }
  state.consumeDeviceCode(entry.deviceCode)
  const principal = delegated(state, entry.approvedUpn)
  return principal === undefined ? failures.badCredentials() : { kind: "delegated", principal, scopes: entry.scopes } satisfies Granted
})

/** Client credentials of a further app registration: a secret of that app, and nothing else. */
const extraApp = Effect.fnUntraced(function*(identity: Identity, tenant: string, form: Form) {
  const app = identity.options.extraApps?.find((candidate) => candidate.clientId === form.client_id)
  if (app === undefined) return failures.unknownApp(form.client_id, tenant)
  if (form.grant_type !== "client_credentials" || form.client_secret === undefined) return failures.noClientCredential()
  const scope = scopesOr(identity, parseClientCredentials(form.scope))
  if (scope !== undefined) return scope
  const now = yield* Clock.currentTimeMillis
  const secret = app.clientSecrets.find((candidate) => candidate.value === form.client_secret)
  if (secret === undefined || (secret.expiresAt !== undefined && now >= secret.expiresAt)) {
    return fail(401, "invalid_client", 7000215, `Invalid client secret provided for app '${app.clientId}'.`)
  }
  return { kind: "app", principal: { kind: "app", appId: app.clientId, tenantId: identity.state.tenantId } } satisfies Granted
})

const token = Effect.fnUntraced(function*(identity: Identity, tenant: string, form: Form) {
  if (form.client_id !== identity.state.clientId) return yield* extraApp(identity, tenant, form)
  const grant = form.grant_type
  if (grant === "client_credentials") return yield* clientCredentials(identity, tenant, form)
  if (!identity.options.allowPublicClientFlows && grant !== "refresh_token") return failures.noClientCredential()
  if (grant === "password") return password(identity, form)
  if (grant === "refresh_token") return refresh(identity, form)
  // MSAL sends the short form `device_code` (recorded real requests); RFC 8628 names the URN.
  if (grant === "urn:ietf:params:oauth:grant-type:device_code" || grant === "device_code") return yield* deviceCode(identity.state, form)
  return fail(400, "unsupported_grant_type", 70003, `The app requested an unsupported grant type '${grant ?? ""}'.`)
})

const readForm = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const params = yield* request.urlParamsBody.pipe(Effect.orElseSucceed(() => UrlParams.empty))
  const form: Form = {}
  for (const [key, value] of params) if (typeof value === "string") form[key] = value
  return form
})

/** Counts, applies the outage and latency faults and checks the tenant before `handle` sees the form. */
const endpoint = (
  { state }: Identity,
  route: string,
  handle: (tenant: string, form: Form) => Effect.Effect<HttpServerResponse.HttpServerResponse>
) =>
(request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function*() {
    state.count(route)
    if (state.faults.latencyMillis > 0) yield* Effect.sleep(state.faults.latencyMillis)
    if (state.faults.tokenOutage) return yield* errorResponse(failures.outage(), state.baseUrl())
    const { tenant = "" } = yield* HttpRouter.params
    if (!knownTenant(tenant, state.tenantId)) return yield* errorResponse(failures.unknownTenant(tenant), state.baseUrl())
    return yield* handle(tenant, yield* readForm)
  }).pipe(Effect.provideService(HttpServerRequest.HttpServerRequest, request))

/** A token request: the grant checked, then the answer or the refusal. */
const tokenAnswer = Effect.fnUntraced(function*(identity: Identity, tenant: string, form: Form) {
  // Per grant as well (token/password, token/refresh_token, …): a test tells a new sign-in from a refresh.
  identity.state.count(`token/${form.grant_type ?? "none"}`)
  const result = yield* token(identity, tenant, form)
  if ("status" in result) return yield* refuse(identity, result)
  return result.kind === "app"
    ? yield* appTokenAnswer(identity.state, result.principal)
    : yield* delegatedTokenAnswer(identity.state, result.principal, result.scopes, { clientInfo: form.client_info === "1" })
})

/** A device code request (public client flows only). */
const deviceCodeAnswer = Effect.fnUntraced(function*(identity: Identity, tenant: string, form: Form) {
  const { options, state } = identity
  if (form.client_id !== state.clientId) return yield* refuse(identity, failures.unknownApp(form.client_id, tenant))
  if (!options.allowPublicClientFlows) {
    return yield* refuse(identity, fail(400, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."))
  }
  const scopes = scopesOr(identity, parseDelegated(form.scope))
  if ("status" in scopes) return yield* refuse(identity, scopes)
  const entry = yield* state.createDeviceCode(options.deviceCodeExpiresInSeconds, scopes)
  const verificationUri = `${state.baseUrl()}/devicelogin`
  return HttpServerResponse.jsonUnsafe({
    user_code: entry.userCode,
    device_code: entry.deviceCode,
    verification_uri: verificationUri,
    expires_in: options.deviceCodeExpiresInSeconds,
    interval: options.deviceCodeIntervalSeconds,
    message: `To sign in, use a web browser to open the page ${verificationUri} and enter the code ${entry.userCode} to authenticate.`
  })
})
