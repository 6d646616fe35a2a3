/**
 * The simulated identity platform's refusals: the AADSTS code, the OAuth `error` and the wording the real platform
 * uses (sources in docs/protocol-notes.md), rendered as its error body
 * `{error, error_description, error_codes, timestamp, trace_id, correlation_id, error_uri, suberror?}`.
 */
import { Clock, Effect } from "effect"
import { HttpServerResponse } from "effect/http"
import { randomUUID } from "node:crypto"
import type { ScopeProblem } from "./SimScopes.ts"

export interface TokenFailure {
  readonly status: number
  readonly error: string
  readonly code: number
  readonly description: string
  readonly suberror?: string | undefined
}

export const fail = (status: number, error: string, code: number, description: string, suberror?: string): TokenFailure => ({
  status,
  error,
  code,
  description,
  suberror
})

/** The name the simulated tenant shows for the registered app (AADSTS65001 names it). */
const appName = "teams-presence-connector"

export const failures = {
  unknownTenant: (tenant: string, error = "invalid_request") =>
    fail(
      400,
      error,
      90002,
      `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`
    ),
  unknownApp: (clientId: string | undefined, tenant: string) =>
    fail(400, "unauthorized_client", 700016, `Application with identifier '${clientId ?? ""}' was not found in the directory '${tenant}'.`),
  noClientCredential: () =>
    fail(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."),
  outage: () => fail(503, "temporarily_unavailable", 50001, "The service is temporarily unavailable."),
  badCredentials: () => fail(400, "invalid_grant", 50126, "Error validating credentials due to invalid username or password.")
}

/** The platform's answer to a scope it refuses. */
export const scopeFailure = (problem: ScopeProblem, context: { readonly clientId: string; readonly tenantId: string }): TokenFailure => {
  switch (problem._tag) {
    case "Missing":
      return fail(400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
    case "UnknownResource":
      return fail(
        400,
        "invalid_resource",
        500011,
        `The resource principal named ${problem.resource} was not found in the tenant named ${context.tenantId}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`
      )
    case "MixedDefault":
      return fail(
        400,
        "invalid_scope",
        70011,
        `The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope ${problem.scope} is not valid.`
      )
    case "NotConsented":
      return fail(
        400,
        "invalid_grant",
        65001,
        `The user or administrator has not consented to use the application with ID '${context.clientId}' named '${appName}'. Send an interactive authorization request for this user and resource.`,
        "consent_required"
      )
    case "ClientCredentialsNeedDefault":
      return fail(
        400,
        "invalid_scope",
        1002012,
        `The provided value for scope ${problem.scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`
      )
  }
}

/** Renders a failure as the platform does: the AADSTS text, then trace id, correlation id and timestamp. */
export const errorResponse = (failure: TokenFailure, baseUrl: string) =>
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
      correlation_id: correlationId,
      error_uri: `${baseUrl}/error?code=${failure.code}`,
      ...(failure.suberror !== undefined ? { suberror: failure.suberror } : {})
    }, { status: failure.status })
  })
