/**
 * Graph-shaped answers of the simulator: JSON with `request-id` / `client-request-id` headers, and the error body
 * Graph sends (`{error:{code,message,innerError}}`, with Retry-After on a 429).
 */
import { Clock, Effect, Schema } from "effect"
import { HttpServerResponse } from "effect/http"
import { randomUUID } from "node:crypto"

/** A Graph-shaped failure raised inside a route; rendered by `SimState.errorResponse`. */
export class SimHttpError extends Schema.TaggedError<SimHttpError>()("SimHttpError", {
  status: Schema.Number,
  code: Schema.String,
  message: Schema.String,
  retryAfterSeconds: Schema.optionalKey(Schema.Number)
}) {}

export const isoSeconds = (millis: number): string => new Date(millis).toISOString().replace(/\.\d{3}Z$/, "")

export interface SimResponses {
  /** A Graph-shaped JSON answer with `request-id` / `client-request-id` headers. */
  json(status: number, body: unknown, headers?: Record<string, string>): Effect.Effect<HttpServerResponse.HttpServerResponse>
  /** `{error:{code,message,innerError:{date,"request-id","client-request-id"}}}` */
  errorResponse(error: SimHttpError): Effect.Effect<HttpServerResponse.HttpServerResponse>
}

/** `latencyMillis` is the fault setting, read at every answer. */
export const makeSimResponses = (latencyMillis: () => number): SimResponses => ({
  json: (status, body, headers = {}) =>
    Effect.gen(function*() {
      const requestId = randomUUID()
      if (latencyMillis() > 0) yield* Effect.sleep(latencyMillis())
      return HttpServerResponse.jsonUnsafe(body, {
        status,
        headers: { "request-id": requestId, "client-request-id": requestId, ...headers }
      })
    }),
  errorResponse: (error) =>
    Effect.gen(function*() {
      const requestId = randomUUID()
      const now = yield* Clock.currentTimeMillis
      const retry = error.retryAfterSeconds
      const body = error.status === 429
        ? {
          error: {
            code: error.code,
            innerError: {
              code: "429",
              date: isoSeconds(now),
              message: "Please retry after",
              "request-id": requestId,
              status: "429"
            },
            message: error.message
          }
        }
        : {
          error: {
            code: error.code,
            message: error.message,
            innerError: { date: isoSeconds(now), "request-id": requestId, "client-request-id": requestId }
          }
        }
      return HttpServerResponse.jsonUnsafe(body, {
        status: error.status,
        headers: {
          "request-id": requestId,
          "client-request-id": requestId,
          ...(retry !== undefined ? { "Retry-After": String(retry) } : {})
        }
      })
    })
})
