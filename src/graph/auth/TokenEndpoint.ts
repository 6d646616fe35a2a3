/**
 * The identity platform's token and device-code endpoints (protocols.md §1.1): form-encoded POSTs whose answers are
 * decoded with Schemas. Error bodies are returned, not thrown, so callers can branch on device-code polling states.
 */
import { Effect, Metric, Schema } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { graphRequests } from "../../domain/Metrics.ts"
import { type AuthError, networkAuthError, TokenErrorBody } from "./AuthError.ts"

export const TokenResponse = Schema.Struct({
  token_type: Schema.String,
  expires_in: Schema.Number,
  ext_expires_in: Schema.optionalKey(Schema.Number),
  access_token: Schema.String,
  refresh_token: Schema.optionalKey(Schema.String),
  scope: Schema.optionalKey(Schema.String),
  id_token: Schema.optionalKey(Schema.String)
})
export type TokenResponse = typeof TokenResponse.Type

export const DeviceCodeResponse = Schema.Struct({
  user_code: Schema.String,
  device_code: Schema.String,
  verification_uri: Schema.String,
  expires_in: Schema.Number,
  interval: Schema.optionalKey(Schema.Number),
  message: Schema.optionalKey(Schema.String)
})
export type DeviceCodeResponse = typeof DeviceCodeResponse.Type

export type EndpointResult<A> =
  | { readonly _tag: "Ok"; readonly value: A }
  | { readonly _tag: "Failed"; readonly status: number; readonly body: TokenErrorBody }

const decodeError = Schema.decodeUnknownEffect(TokenErrorBody)

/** POSTs `form` and decodes a 2xx body with `schema`; a 4xx body is decoded as the platform's error body. */
export const postForm = Effect.fnUntraced(function*<A>(
  client: HttpClient.HttpClient,
  url: string,
  form: Record<string, string>,
  schema: Schema.Decoder<A>,
  credential: string
): Effect.fn.Return<EndpointResult<A>, AuthError> {
  const request = HttpClientRequest.post(url).pipe(
    HttpClientRequest.bodyUrlParams(form),
    HttpClientRequest.acceptJson
  )
  const response = yield* client.execute(request).pipe(
    Effect.tapError(() => Metric.update(Metric.withAttributes(graphRequests, { status: "network" }), 1)),
    Effect.mapError((error) => networkAuthError(credential, error.reason._tag))
  )
  yield* Metric.update(Metric.withAttributes(graphRequests, { status: String(response.status) }), 1)
  // An outage of the identity platform is transient, whatever body it carries.
  if (response.status >= 500) return yield* networkAuthError(credential, `HTTP ${response.status}`)
  const json = yield* response.json.pipe(
    Effect.mapError(() => networkAuthError(credential, `HTTP ${response.status} without a JSON body`))
  )
  if (response.status >= 200 && response.status < 300) {
    const value = yield* Schema.decodeUnknownEffect(schema)(json).pipe(
      Effect.mapError((issue) => networkAuthError(credential, `unexpected token response: ${issue.message}`))
    )
    return { _tag: "Ok", value } as const
  }
  const body = yield* decodeError(json).pipe(
    Effect.mapError(() => networkAuthError(credential, `HTTP ${response.status} with an unexpected body`))
  )
  return { _tag: "Failed", status: response.status, body } as const
})
