/**
 * Microsoft's published samples (test/fixtures/conformance/graph-samples.json): every token, users, presence and error
 * response decodes with the project's Schemas, and the simulator answers the same calls with bodies of the same shape.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { NodeHttpClient } from "@effect/platform-node"
import { readFileSync } from "node:fs"
import { TokenErrorBody } from "../../src/graph/auth/AuthError.ts"
import { GraphErrorBody } from "../../src/graph/client/GraphError.ts"
import { PresencesResponse } from "../../src/graph/presence/PresenceReader.ts"
import { GraphUser, UsersPage } from "../../src/graph/users/TeamsUsers.ts"
import { TokenResponse } from "../../src/graph/auth/TokenEndpoint.ts"
import { GraphPresence } from "../../src/domain/Presence.ts"
import { GraphSimulator, generateUsers, simUserId } from "../../src/simulators/graph/GraphSimulator.ts"
import { assertSameShape } from "../support/shape.ts"
import { clientId, clientSecret, tenantId } from "./harness.ts"

interface Sample {
  readonly kind: string
  readonly status?: number | null
  readonly body: unknown
}
const samples: Record<string, Sample> = JSON.parse(
  readFileSync(new URL("../fixtures/conformance/graph-samples.json", import.meta.url), "utf8")
)

/** Which schema decodes which published response. */
const schemaFor: Record<string, Schema.Decoder<unknown>> = {
  token_client_credentials_response: TokenResponse,
  token_client_credentials_response_entra: TokenResponse,
  token_error_invalid_scope: TokenErrorBody,
  users_list_response_app_only: UsersPage,
  users_list_response: UsersPage,
  users_list_filter_count_response: UsersPage,
  users_list_assigned_licenses_response: UsersPage,
  users_page_with_nextlink_response: UsersPage,
  user_assign_license_response_assigned_plans: GraphUser,
  presence_get_me_response: GraphPresence,
  presence_get_user_response: GraphPresence,
  presence_get_communications_presences_response: PresencesResponse,
  presence_get_me_response_beta: GraphPresence,
  presence_get_user_response_beta: GraphPresence,
  presence_get_communications_presences_response_beta: GraphPresence,
  presence_get_user_with_status_message_response: GraphPresence,
  presence_get_me_with_status_message_response_beta: GraphPresence,
  get_presences_by_user_id_response: PresencesResponse,
  get_presences_by_user_id_response_beta: PresencesResponse,
  error_generic: GraphErrorBody,
  error_generic_requestId_variant: GraphErrorBody,
  error_429_too_many_requests: GraphErrorBody,
  error_409_subscription_already_exists: GraphErrorBody,
  error_403_authorization_request_denied: GraphErrorBody,
  error_403_empty_code: GraphErrorBody,
  error_405_request_bad_request: GraphErrorBody
}

describe("graph-samples.json", () => {
  it("every relevant response sample decodes with the project's schemas", () => {
    for (const [name, schema] of Object.entries(schemaFor)) {
      const sample = samples[name]
      assert.isDefined(sample, `sample ${name} exists`)
      const result = Schema.decodeUnknownExit(schema)(sample!.body)
      assert.isTrue(result._tag === "Success", `${name} decodes: ${String(result)}`)
    }
  })

  it("the schemas reject a body of the wrong shape", () => {
    assert.isTrue(Schema.decodeUnknownExit(TokenResponse)({ token_type: "Bearer" })._tag === "Failure")
    assert.isTrue(Schema.decodeUnknownExit(PresencesResponse)({ value: [{ availability: "Busy" }] })._tag === "Failure")
  })

  it.live("the simulator's bodies have the samples' shape", () =>
    Effect.gen(function*() {
      const sim = yield* GraphSimulator.make({
        tenantId,
        clientId,
        clientSecrets: [{ value: clientSecret }],
        users: generateUsers(3)
      })
      yield* sim.setPresence(simUserId(1), { availability: "Available", activity: "Available", statusMessage: { content: "Hi" } })
      const http = yield* HttpClient.HttpClient
      const call = (request: HttpClientRequest.HttpClientRequest) =>
        http.execute(request).pipe(Effect.flatMap((response) => response.json))
      const tokenUrl = `${sim.url}/${tenantId}/oauth2/v2.0/token`
      const form = { client_id: clientId, scope: "https://graph.microsoft.com/.default", grant_type: "client_credentials" }

      const token = yield* call(HttpClientRequest.post(tokenUrl).pipe(HttpClientRequest.bodyUrlParams({ ...form, client_secret: clientSecret })))
      assertSameShape(samples.token_client_credentials_response!.body, token)
      const scopeError = yield* call(HttpClientRequest.post(tokenUrl).pipe(
        HttpClientRequest.bodyUrlParams({ ...form, scope: "https://foo.microsoft.com/.default", client_secret: clientSecret })
      ))
      assertSameShape(samples.token_error_invalid_scope!.body, scopeError)

      const bearer = HttpClientRequest.bearerToken((token as { access_token: string }).access_token)
      const users = yield* call(HttpClientRequest.get(`${sim.url}/v1.0/users`).pipe(bearer))
      assertSameShape(samples.users_list_response!.body, users)
      const page = yield* call(HttpClientRequest.get(`${sim.url}/v1.0/users?$top=1&$count=true`).pipe(
        bearer,
        HttpClientRequest.setHeader("ConsistencyLevel", "eventual")
      ))
      assertSameShape(samples.users_page_with_nextlink_response!.body, page)
      const presence = yield* call(HttpClientRequest.get(`${sim.url}/v1.0/users/${simUserId(1)}/presence`).pipe(bearer))
      assertSameShape(samples.presence_get_user_response!.body, presence)
      assertSameShape(samples.presence_get_user_with_status_message_response!.body, presence)
      const bulk = yield* call(HttpClientRequest.post(`${sim.url}/v1.0/communications/getPresencesByUserId`).pipe(
        bearer,
        HttpClientRequest.bodyJsonUnsafe({ ids: [simUserId(1), simUserId(2)] })
      ))
      assertSameShape(samples.get_presences_by_user_id_response!.body, bulk)
      const notFound = yield* call(HttpClientRequest.get(`${sim.url}/v1.0/users/nobody/presence`).pipe(bearer))
      assertSameShape(samples.error_403_empty_code!.body, notFound)
      yield* sim.faults.throttle(1, 2.128)
      const throttled = yield* call(HttpClientRequest.get(`${sim.url}/v1.0/users`).pipe(bearer))
      assertSameShape(samples.error_429_too_many_requests!.body, throttled)
      const unauthenticated = yield* call(HttpClientRequest.get(`${sim.url}/v1.0/users`))
      assert.strictEqual((unauthenticated as { error: { code: string } }).error.code, "InvalidAuthenticationToken")
    }).pipe(Effect.scoped, Effect.provide(NodeHttpClient.layerUndici)))
})
