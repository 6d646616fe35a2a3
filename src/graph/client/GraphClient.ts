/**
 * Every Graph call goes through here: bearer token from the TokenService, body decoded with a Schema, 429/503/504
 * honouring Retry-After (fractional seconds too), other transient failures retried with bounded exponential backoff
 * and jitter, one retry with a fresh token after a 401, and errors typed by Graph's `error.code` with the request-id.
 */
import { Context, Effect, Layer, Metric, Option, Random, Schema } from "effect"
import { clip } from "../../domain/LogText.ts"
import { Headers, HttpClient, HttpClientRequest } from "effect/http"
import { graphRequests, graphThrottled } from "../../domain/Metrics.ts"
import type { AuthError } from "../auth/AuthError.ts"
import { GraphError, GraphErrorBody } from "./GraphError.ts"
import { credentialKey, type CredentialRef, GraphConfig, trimSlash } from "./GraphSettings.ts"
import { TokenService } from "../auth/TokenService.ts"

export type GraphMethod = "GET" | "POST" | "PATCH" | "PUT" | "DELETE"

export interface GraphRequest {
  readonly method: GraphMethod
  /** A path under graphBaseUrl ("/v1.0/users?…") or an absolute URL (an `@odata.nextLink`). */
  readonly url: string
  readonly credential: CredentialRef
  readonly body?: unknown
  readonly headers?: Record<string, string>
}

export interface GraphRequestWithResponse<S extends Schema.Decoder<unknown>> extends GraphRequest {
  readonly response: S
}

export interface RetryPolicy {
  /** Retries after the first attempt (default 5). */
  readonly maxRetries: number
  /** First backoff delay for 5xx and network failures (default 500 ms); doubles each retry. */
  readonly baseDelayMillis: number
  /** Upper bound of one backoff delay and of an honoured Retry-After (default 60 s). */
  readonly maxDelayMillis: number
}

export const defaultRetryPolicy: RetryPolicy = { maxRetries: 5, baseDelayMillis: 500, maxDelayMillis: 60_000 }

interface Answer {
  readonly status: number
  readonly requestId: string | undefined
  readonly retryAfterMillis: Option.Option<number>
  readonly json: unknown
}

/** `Retry-After` in seconds (fractional allowed, as Graph sends e.g. "2.128") or as an HTTP date (ignored). */
export const parseRetryAfter = (value: string | undefined): Option.Option<number> => {
  if (value === undefined) return Option.none()
  const seconds = Number(value.trim())
  return Number.isFinite(seconds) && seconds >= 0 ? Option.some(Math.ceil(seconds * 1000)) : Option.none()
}

const countStatus = (status: string) => Metric.update(Metric.withAttributes(graphRequests, { status }), 1)

export class GraphClient extends Context.Service<GraphClient, {
  execute<S extends Schema.Decoder<unknown>>(request: GraphRequestWithResponse<S>): Effect.Effect<S["Type"], GraphError | AuthError>
  /** For calls answered 202/204 without a body. */
  executeEmpty(request: GraphRequest): Effect.Effect<void, GraphError | AuthError>
}>()("teams-presence-connector/graph/client/GraphClient") {
  static readonly layerWith = (policy: Partial<RetryPolicy>) =>
    Layer.effect(
      GraphClient,
      Effect.gen(function*() {
        const settings = yield* GraphConfig
        const client: Client = {
          tokens: yield* TokenService,
          http: yield* HttpClient.HttpClient,
          retry: { ...defaultRetryPolicy, ...policy },
          baseUrl: trimSlash(settings.graphBaseUrl)
        }

        const execute = Effect.fn("GraphClient.execute")(function*<S extends Schema.Decoder<unknown>>(
          request: GraphRequestWithResponse<S>
        ) {
          const json = yield* send(client, request)
          return yield* Schema.decodeUnknownEffect(request.response)(json).pipe(
            Effect.mapError((issue) =>
              new GraphError({
                status: 200,
                code: "InvalidResponse",
                message: `Graph's answer did not match the expected shape: ${issue.message}`,
                method: request.method,
                path: new URL(request.url, client.baseUrl).pathname
              })
            ),
            Effect.tapError((error) => Effect.logError("Undecodable Graph answer", { path: error.path, detail: clip(error.message, 300) }))
          )
        })

        const executeEmpty = Effect.fn("GraphClient.executeEmpty")(function*(request: GraphRequest) {
          yield* send(client, request)
        })

        return GraphClient.of({ execute, executeEmpty })
      })
    )

  static readonly layer = GraphClient.layerWith({})
}

/** What every call uses: tokens, the HTTP client, the retry policy and Graph's base URL. */
interface Client {
  readonly tokens: TokenService["Service"]
  readonly http: HttpClient.HttpClient
  readonly retry: RetryPolicy
  readonly baseUrl: string
}

/** The delay before retry `retryNumber` (0 first) of a 5xx or network failure. */
const backoff = Effect.fnUntraced(function*(retry: RetryPolicy, retryNumber: number) {
  const exponential = Math.min(retry.maxDelayMillis, retry.baseDelayMillis * 2 ** retryNumber)
  // "Equal jitter": at least half the delay, so concurrent clients spread out without retrying at once.
  return Math.round(exponential / 2 + (yield* Random.next) * exponential / 2)
})

/** One attempt; none when Graph could not be reached. */
const sendOnce = Effect.fnUntraced(function*(client: Client, request: GraphRequest, url: string) {
  const token = yield* client.tokens.getToken(request.credential)
  let outgoing = HttpClientRequest.make(request.method)(url, {
    headers: { ...request.headers },
    acceptJson: true
  }).pipe(HttpClientRequest.bearerToken(token))
  if (request.body !== undefined) outgoing = HttpClientRequest.bodyJsonUnsafe(outgoing, request.body)
  const response = yield* client.http.execute(outgoing).pipe(Effect.option)
  if (Option.isNone(response)) return Option.none<Answer>()
  const text = yield* response.value.text.pipe(Effect.orElseSucceed(() => ""))
  let json: unknown = undefined
  try {
    json = text.length > 0 ? JSON.parse(text) : undefined
  } catch {
    json = text
  }
  return Option.some<Answer>({
    status: response.value.status,
    requestId: Option.getOrUndefined(Headers.get(response.value.headers, "request-id")),
    retryAfterMillis: parseRetryAfter(Option.getOrUndefined(Headers.get(response.value.headers, "retry-after"))),
    json
  })
})

const toGraphError = (request: GraphRequest, path: string, answer: Answer): GraphError => {
  const decoded = Schema.decodeUnknownOption(GraphErrorBody)(answer.json)
  const inner = Option.isSome(decoded) ? decoded.value.error.innerError : undefined
  const requestId = answer.requestId ?? inner?.["request-id"] ?? inner?.requestId
  return new GraphError({
    status: answer.status,
    code: Option.isSome(decoded) && decoded.value.error.code !== "" ? decoded.value.error.code : `HTTP${answer.status}`,
    message: Option.isSome(decoded) && decoded.value.error.message !== undefined
      ? decoded.value.error.message
      : `Graph answered HTTP ${answer.status}`,
    ...(requestId !== undefined ? { requestId } : {}),
    ...(Option.isSome(answer.retryAfterMillis) ? { retryAfterMillis: answer.retryAfterMillis.value } : {}),
    method: request.method,
    path
  })
}

/** Sends with retries; returns the successful answer's JSON. */
const send = Effect.fnUntraced(function*(client: Client, request: GraphRequest) {
  const { retry } = client
  const url = /^https?:\/\//i.test(request.url) ? request.url : `${client.baseUrl}${request.url}`
  const path = new URL(url).pathname
  const annotations = { method: request.method, path, credential: credentialKey(request.credential) }
  let retries = 0
  let reauthenticated = false
  while (true) {
    const answer = yield* sendOnce(client, request, url).pipe(
      Effect.catchIf(
        (error: AuthError) => error.reason === "Network" && retries < retry.maxRetries,
        () => Effect.succeed(Option.none<Answer>())
      )
    )
    if (Option.isNone(answer)) {
      yield* countStatus("network")
      if (retries >= retry.maxRetries) {
        return yield* new GraphError({ status: 0, code: "Network", message: "Graph could not be reached", ...annotations })
      }
      const delay = yield* backoff(retry, retries++)
      yield* Effect.logWarning("Graph unreachable, retrying", { ...annotations, delayMillis: delay })
      yield* Effect.sleep(delay)
      continue
    }
    const { status, requestId, retryAfterMillis } = answer.value
    yield* countStatus(String(status))
    if (status >= 200 && status < 300) return answer.value.json
    if (status === 401 && !reauthenticated) {
      reauthenticated = true
      yield* Effect.logWarning("Graph rejected the access token, fetching a new one", { ...annotations, requestId: clip(requestId, 60) })
      yield* client.tokens.invalidate(request.credential)
      continue
    }
    if (status === 429) yield* Metric.update(graphThrottled, 1)
    const transient = status === 429 || status === 500 || status === 502 || status === 503 || status === 504
    if (!transient || retries >= retry.maxRetries) {
      const error = toGraphError(request, path, answer.value)
      yield* Effect.logWarning("Graph request failed", { ...annotations, status, code: clip(error.code, 60), requestId: clip(error.requestId, 60) })
      return yield* error
    }
    const delay = Option.isSome(retryAfterMillis) && (status === 429 || status === 503 || status === 504)
      ? Math.min(retryAfterMillis.value, retry.maxDelayMillis)
      : yield* backoff(retry, retries)
    retries++
    yield* Effect.logWarning("Graph asked to retry", { ...annotations, status, requestId: clip(requestId, 60), delayMillis: delay })
    yield* Effect.sleep(delay)
  }
})
