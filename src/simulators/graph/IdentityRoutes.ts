/**
 * The identity platform endpoints of the simulator (protocols.md §1.1): `/{tenant}/oauth2/v2.0/token` for client
 * credentials (secret or PS256 assertion checked against the registered certificate), password, device code and
 * rotating refresh tokens, and `/{tenant}/oauth2/v2.0/devicecode`. Errors are shaped like the platform's.
 */
import { Clock, Deferred, Effect } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse, UrlParams } from "effect/http"
import { decodeProtectedHeader, importX509, jwtVerify } from "jose"
import { createHash, randomUUID, X509Certificate } from "node:crypto"
import { type Principal, SimState } from "./SimState.ts"

export interface SimClientSecret {
  readonly value: string
  /** Epoch milliseconds; after it the secret is answered with AADSTS7000222. */
  readonly expiresAt?: number | undefined
}

export interface IdentityOptions {
  readonly clientSecrets: ReadonlyArray<SimClientSecret>
  readonly certificatePem?: string | undefined
  /** "Allow public client flows" on the app registration (password and device code); default true. */
  readonly allowPublicClientFlows: boolean
  readonly deviceCodeIntervalSeconds: number
  readonly deviceCodeExpiresInSeconds: number
}

interface TokenFailure {
  readonly status: number
  readonly error: string
  readonly code: number
  readonly description: string
}

const fail = (status: number, error: string, code: number, description: string): TokenFailure => ({
  status,
  error,
  code,
  description
})

export const IdentityRoutes = (options: IdentityOptions) =>
  HttpRouter.use((router) =>
    Effect.gen(function*() {
      const state = yield* SimState
      const thumbprint = options.certificatePem !== undefined
        ? createHash("sha256").update(new X509Certificate(options.certificatePem).raw).digest("base64url")
        : undefined
      const publicKey = options.certificatePem !== undefined
        ? yield* Effect.promise(() => importX509(options.certificatePem!, "PS256"))
        : undefined

      const errorBody = (failure: TokenFailure) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const stamp = new Date(now).toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "Z")
          const traceId = randomUUID()
          const correlationId = randomUUID()
          return HttpServerResponse.jsonUnsafe({
            error: failure.error,
            error_description:
              `AADSTS${failure.code}: ${failure.description}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${stamp}`,
            error_codes: [failure.code],
            timestamp: stamp,
            trace_id: traceId,
            correlation_id: correlationId
          }, { status: failure.status })
        })

      const checkScope = (scope: string | undefined): TokenFailure | undefined => {
        const parts = (scope ?? "").split(/\s+/).filter((part) => part.length > 0)
        const resources = parts.filter((part) => part.endsWith("/.default"))
        const known = [state.baseUrl(), "https://graph.microsoft.com"].map((base) => `${base}/.default`)
        const others = parts.filter((part) => !part.endsWith("/.default"))
        if (resources.length !== 1 || !known.includes(resources[0]!)) {
          return fail(400, "invalid_scope", 70011, `The provided value for the input parameter 'scope' is not valid. The scope ${scope ?? ""} is not valid.`)
        }
        if (others.some((part) => !["offline_access", "openid", "profile"].includes(part))) {
          return fail(400, "invalid_scope", 70011, `The provided value for the input parameter 'scope' is not valid. The scope ${scope ?? ""} is not valid.`)
        }
        return undefined
      }

      const verifyAssertion = (assertion: string, tenant: string) =>
        Effect.gen(function*() {
          if (publicKey === undefined) return false
          const header = yield* Effect.try(() => decodeProtectedHeader(assertion)).pipe(Effect.option)
          if (header._tag === "None" || header.value["x5t#S256"] !== thumbprint || header.value.alg !== "PS256") return false
          const verified = yield* Effect.tryPromise(() =>
            jwtVerify(assertion, publicKey, {
              algorithms: ["PS256"],
              issuer: state.clientId,
              subject: state.clientId,
              audience: `${state.baseUrl()}/${tenant}/oauth2/v2.0/token`,
              maxTokenAge: "10 minutes"
            })
          ).pipe(Effect.option)
          return verified._tag === "Some" && typeof verified.value.payload.jti === "string"
        })

      const success = (principal: Principal, withRefreshToken: boolean) =>
        Effect.gen(function*() {
          const { token, expiresIn } = yield* state.issueToken(principal)
          return HttpServerResponse.jsonUnsafe({
            token_type: "Bearer",
            ...(withRefreshToken ? { scope: `${state.baseUrl()}/User.Read.All ${state.baseUrl()}/Presence.Read.All` } : {}),
            expires_in: expiresIn,
            ext_expires_in: expiresIn,
            access_token: token,
            ...(withRefreshToken ? { refresh_token: state.issueRefreshToken(principal) } : {})
          })
        })

      const delegated = (upn: string): Principal | undefined => {
        const user = state.findUserByUpn(upn)
        return user === undefined
          ? undefined
          : { kind: "delegated", appId: state.clientId, tenantId: state.tenantId, upn: user.userPrincipalName, userId: user.id }
      }

      const token = Effect.fnUntraced(function*(tenant: string, form: Record<string, string | undefined>) {
        const now = yield* Clock.currentTimeMillis
        const clientId = form.client_id
        if (clientId !== state.clientId) {
          return fail(400, "unauthorized_client", 700016, `Application with identifier '${clientId ?? ""}' was not found in the directory '${tenant}'.`)
        }
        const grant = form.grant_type
        if (grant === "client_credentials") {
          const scopeFailure = checkScope(form.scope)
          if (scopeFailure !== undefined) return scopeFailure
          if (form.client_secret !== undefined) {
            const secret = options.clientSecrets.find((candidate) => candidate.value === form.client_secret)
            if (secret === undefined) {
              return fail(401, "invalid_client", 7000215, `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${state.clientId}'.`)
            }
            if (secret.expiresAt !== undefined && now >= secret.expiresAt) {
              return fail(401, "invalid_client", 7000222, `The provided client secret keys for app '${state.clientId}' are expired.`)
            }
            return { kind: "app", appId: state.clientId, tenantId: state.tenantId } satisfies Principal
          }
          if (form.client_assertion !== undefined) {
            if (form.client_assertion_type !== "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
              return fail(400, "invalid_request", 90014, "The request body must contain the following parameter: 'client_assertion_type'.")
            }
            const ok = yield* verifyAssertion(form.client_assertion, tenant)
            if (!ok) {
              return fail(401, "invalid_client", 700027, "The certificate with identifier used to sign the client assertion is not registered on application, or the signature is invalid.")
            }
            return { kind: "app", appId: state.clientId, tenantId: state.tenantId } satisfies Principal
          }
          return fail(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
        }
        if (!options.allowPublicClientFlows && grant !== "refresh_token") {
          return fail(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
        }
        if (grant === "password") {
          const scopeFailure = checkScope(form.scope)
          if (scopeFailure !== undefined) return scopeFailure
          const user = state.findUserByUpn(form.username ?? "")
          if (user === undefined || user.password === undefined || user.password !== form.password) {
            return fail(400, "invalid_grant", 50126, "Error validating credentials due to invalid username or password.")
          }
          if (user.mfa === true) {
            return fail(400, "invalid_grant", 50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the resource.")
          }
          return delegated(user.userPrincipalName)!
        }
        if (grant === "refresh_token") {
          const principal = state.redeemRefreshToken(form.refresh_token ?? "")
          if (principal === undefined) {
            return fail(400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
          }
          return principal
        }
        if (grant === "urn:ietf:params:oauth:grant-type:device_code") {
          const entry = state.findDeviceCode(form.device_code ?? "")
          if (entry === undefined) return fail(400, "invalid_grant", 70000, "The provided value for the 'device_code' is not valid.")
          if (now >= entry.expiresAt) {
            state.consumeDeviceCode(entry.deviceCode)
            return fail(400, "expired_token", 70020, "The provided value for the input parameter 'device_code' is not valid. This device code has expired.")
          }
          if (entry.approvedUpn === undefined) {
            return fail(400, "authorization_pending", 70016, "OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
          }
          state.consumeDeviceCode(entry.deviceCode)
          return delegated(entry.approvedUpn) ??
            fail(400, "invalid_grant", 50126, "Error validating credentials due to invalid username or password.")
        }
        return fail(400, "unsupported_grant_type", 70003, `The app requested an unsupported grant type '${grant ?? ""}'.`)
      })

      const tenantFailure = (tenant: string) =>
        tenant === state.tenantId || tenant === "organizations" || tenant === "common"
          ? undefined
          : fail(400, "invalid_request", 90002, `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`)

      const readForm = Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const params = yield* request.urlParamsBody.pipe(Effect.orElseSucceed(() => UrlParams.empty))
        const form: Record<string, string | undefined> = {}
        for (const [key, value] of params) if (typeof value === "string") form[key] = value
        return form
      })

      const outage = fail(503, "temporarily_unavailable", 50001, "The service is temporarily unavailable.")

      yield* router.add("POST", "/:tenant/oauth2/v2.0/token", (request) =>
        Effect.gen(function*() {
          state.count("token")
          if (state.faults.latencyMillis > 0) yield* Effect.sleep(state.faults.latencyMillis)
          if (state.faults.tokenOutage) return yield* errorBody(outage)
          const { tenant = "" } = yield* HttpRouter.params
          const badTenant = tenantFailure(tenant)
          if (badTenant !== undefined) return yield* errorBody(badTenant)
          const form = yield* readForm
          const result = yield* token(tenant, form)
          if ("status" in result) {
            if (result.error === "authorization_pending") {
              const entry = state.findDeviceCode(form.device_code ?? "")
              if (entry !== undefined) yield* Deferred.succeed(entry.polled, undefined)
            }
            return yield* errorBody(result)
          }
          return yield* success(result, result.kind === "delegated")
        }).pipe(Effect.provideService(HttpServerRequest.HttpServerRequest, request)))

      yield* router.add("POST", "/:tenant/oauth2/v2.0/devicecode", (request) =>
        Effect.gen(function*() {
          state.count("devicecode")
          if (state.faults.tokenOutage) return yield* errorBody(outage)
          const { tenant = "" } = yield* HttpRouter.params
          const badTenant = tenantFailure(tenant)
          if (badTenant !== undefined) return yield* errorBody(badTenant)
          const form = yield* readForm
          if (form.client_id !== state.clientId) {
            return yield* errorBody(fail(400, "unauthorized_client", 700016, `Application with identifier '${form.client_id ?? ""}' was not found in the directory '${tenant}'.`))
          }
          if (!options.allowPublicClientFlows) {
            return yield* errorBody(fail(400, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."))
          }
          const scopeFailure = checkScope(form.scope)
          if (scopeFailure !== undefined) return yield* errorBody(scopeFailure)
          const entry = yield* state.createDeviceCode(options.deviceCodeExpiresInSeconds)
          const verificationUri = `${state.baseUrl()}/devicelogin`
          return HttpServerResponse.jsonUnsafe({
            user_code: entry.userCode,
            device_code: entry.deviceCode,
            verification_uri: verificationUri,
            expires_in: options.deviceCodeExpiresInSeconds,
            interval: options.deviceCodeIntervalSeconds,
            message: `To sign in, use a web browser to open the page ${verificationUri} and enter the code ${entry.userCode} to authenticate.`
          })
        }).pipe(Effect.provideService(HttpServerRequest.HttpServerRequest, request)))
    })
  )
