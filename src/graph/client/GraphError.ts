/** Graph API failures, typed by Graph's `error.code` (protocols.md §1.7), with the `request-id` to quote to Microsoft. */
import { Schema } from "effect"

export class GraphError extends Schema.TaggedError<GraphError>()("GraphError", {
  /** HTTP status, or 0 for a network failure. */
  status: Schema.Number,
  /** Graph's `error.code` ("TooManyRequests", "Request_ResourceNotFound", …), "Network" or "InvalidResponse". */
  code: Schema.String,
  message: Schema.String,
  requestId: Schema.optionalKey(Schema.String),
  method: Schema.String,
  /** Path only (no query), so no ids or tokens end up in logs. */
  path: Schema.String,
  /** Graph's `Retry-After` on the last answer (429/503/504), in milliseconds. */
  retryAfterMillis: Schema.optionalKey(Schema.Number)
}) {}

/** `{error:{code,message,innerError:{date,"request-id","client-request-id"}}}`; the docs also show `requestId`. */
export const GraphErrorBody = Schema.Struct({
  error: Schema.Struct({
    code: Schema.String,
    message: Schema.optionalKey(Schema.String),
    innerError: Schema.optionalKey(Schema.Struct({
      date: Schema.optionalKey(Schema.String),
      "request-id": Schema.optionalKey(Schema.String),
      requestId: Schema.optionalKey(Schema.String),
      "client-request-id": Schema.optionalKey(Schema.String)
    }))
  })
})
export type GraphErrorBody = typeof GraphErrorBody.Type
