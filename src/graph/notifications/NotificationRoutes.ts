/**
 * The Graph webhook: `POST {notificationPath}` and `POST {lifecyclePath}` on the connector's HttpRouter.
 * Answers the validation handshake with the decoded token, and every notification with 202 as soon as it is checked
 * and queued — decryption and processing happen elsewhere, so Graph never sees a slow endpoint.
 */
import { ByteSize, Clock, Effect, Exit, Layer, Option } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import type { ServerResponse as NodeServerResponse } from "node:http"
import type { Socket } from "node:net"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { tracing } from "../../observability/ChangeTrace.ts"
import { CertificateStore } from "./crypto/CertificateStore.ts"
import { DecryptPool } from "./crypto/DecryptPool.ts"
import { ValidationTokens } from "./crypto/ValidationTokens.ts"
import { NotificationsWarmUp } from "./crypto/WarmUp.ts"
import { parseJsonBody } from "./JsonBody.ts"
import { decodeChangeNotifications, decodeLifecycleNotifications } from "./Notifications.ts"
import { NotificationsInbox } from "./NotificationsInbox.ts"
import { logRejected } from "./Rejections.ts"
import { loopWasHeld, watchLoop } from "../../http/LoopWatch.ts"
import { answerFlushed, answerProduced, nodeNotifications, recordFlushed, reportGone, served } from "./WebhookNode.ts"
import { takeRequests } from "../../http/Server.ts"
import { SubscriptionSettings } from "../subscriptions/SubscriptionSettings.ts"

/** The Node response under an Effect request, when there is one (not for requests built in memory). */
const serverResponse = (request: HttpServerRequest.HttpServerRequest): NodeServerResponse | undefined => {
  try {
    const response = NodeHttpServerRequest.toServerResponse(request)
    return "once" in response ? (response as NodeServerResponse) : undefined
  } catch {
    return undefined
  }
}

/** The connection under an Effect request, when Node's HTTP server serves it (not for requests built in memory). */
const connectionOf = (request: HttpServerRequest.HttpServerRequest): Socket | undefined => {
  try {
    const incoming = NodeHttpServerRequest.toIncomingMessage(request) as { readonly socket?: unknown }
    const socket = incoming.socket
    return typeof socket === "object" && socket !== null && "readableEnded" in socket ? (socket as Socket) : undefined
  } catch {
    return undefined
  }
}

/**
 * Resumes once the event loop has polled for I/O again. A sender that gave up on a POST while it waited in the listen
 * queue (Graph's side aborts after its timeout and sends the notifications again) closed the connection right after
 * the request: Node reads the request first and the connection's end only at the next poll.
 */
const afterNextPoll = Effect.callback<void>((resume) => {
  setImmediate(() => setImmediate(() => resume(Effect.void)))
})

/**
 * Whether the sender closed the connection before the answer: its items are not handled (they come again in the
 * sender's next POST, and handling them twice would double the work just when the connector is behind), and counted
 * as `client_gone`. A POST already answered is never dropped: this is checked before the answer is written. Only a
 * connection's first POST is checked (and waits for the poll), and only after the event loop was held long enough
 * for its sender to have given up in the listen queue (LoopWatch.ts): a kept-alive connection is watched all along,
 * so a later POST on it is read as it comes, long before its sender would give up, and a flood's POSTs on kept
 * connections are answered without that wait.
 */
const senderGone = Effect.fnUntraced(function*(connection: Socket | undefined, items: number) {
  if (connection === undefined || served.has(connection)) return false
  served.add(connection)
  if (!loopWasHeld()) return false
  // Node's server interrupts the handler when the response closes unanswered: counted the same.
  yield* afterNextPoll.pipe(Effect.onInterrupt(() => reportGone(items)))
  if (!connection.destroyed && !connection.readableEnded) return false
  yield* reportGone(items)
  return true
})

const badRequest = (message: string) => HttpServerResponse.text(message, { status: 400 })

/** The body as JSON, read within the size limit; or the 400 to answer. */
const readJson = Effect.fnUntraced(function*(request: HttpServerRequest.HttpServerRequest, maxBodyBytes: number) {
  const declared = Number(request.headers["content-length"] ?? "0")
  if (Number.isFinite(declared) && declared > maxBodyBytes) {
    yield* logRejected("too_large", `body of ${declared} bytes exceeds the limit of ${maxBodyBytes}`)
    return { ok: false as const, response: HttpServerResponse.text("body too large", { status: 400 }) }
  }
  // The reference caps a body sent without Content-Length (chunked) while it is read.
  const bytes = yield* request.arrayBuffer.pipe(
    Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(maxBodyBytes)),
    Effect.option
  )
  if (bytes._tag === "None") {
    yield* logRejected("too_large", `request body could not be read within the limit of ${maxBodyBytes} bytes`)
    return { ok: false as const, response: badRequest("unreadable or too large body") }
  }
  if (bytes.value.byteLength > maxBodyBytes) {
    yield* logRejected("too_large", `body of ${bytes.value.byteLength} bytes exceeds the limit of ${maxBodyBytes}`)
    return { ok: false as const, response: HttpServerResponse.text("body too large", { status: 400 }) }
  }
  try {
    return { ok: true as const, json: parseJsonBody(bytes.value) }
  } catch {
    yield* logRejected("malformed", "body is not JSON")
    return { ok: false as const, response: badRequest("malformed JSON") }
  }
})

/** `?validationToken=` → 200 text/plain with the decoded token (URLSearchParams decodes it). */
const validationToken = (request: HttpServerRequest.HttpServerRequest): string | undefined => {
  const query = request.url.indexOf("?")
  if (query < 0) return undefined
  return new URLSearchParams(request.url.slice(query + 1)).get("validationToken") ?? undefined
}

export const NotificationRoutes = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const settings = yield* SubscriptionSettings
  const inbox = yield* NotificationsInbox

  /**
   * One webhook: the validation handshake, or a body decoded as `what` and handed to `accept`, answered with 202.
   * A body that is not JSON or not `what` is a 400 and a counted rejection.
   */
  const webhook = <A extends { readonly value: ReadonlyArray<unknown> }>(
    what: string,
    decode: (json: unknown) => Exit.Exit<A, unknown>,
    accept: (body: A) => Effect.Effect<number>
  ) =>
    Effect.fnUntraced(function*(request: HttpServerRequest.HttpServerRequest) {
      const token = validationToken(request)
      if (token !== undefined) return HttpServerResponse.text(token, { status: 200, contentType: "text/plain" })
      const body = yield* readJson(request, settings.maxBodyBytes)
      if (!body.ok) return body.response
      const decoded = decode(body.json)
      if (Exit.isFailure(decoded)) {
        yield* logRejected("malformed", `body is not a ${what}`)
        return badRequest(`not a ${what}`)
      }
      // 499 (as proxies log a request whose client closed it first): an answer nobody reads.
      if (yield* senderGone(connectionOf(request), decoded.value.value.length)) return HttpServerResponse.empty({ status: 499 })
      yield* accept(decoded.value)
      return HttpServerResponse.empty({ status: 202 })
    })

  const notifications = webhook("change notification collection", decodeChangeNotifications, inbox.acceptNotifications)
  const lifecycle = webhook("lifecycle notification collection", decodeLifecycleNotifications, inbox.acceptLifecycle)

  /**
   * The notification handler's own answer time (connector_webhook_response_seconds), from the handler starting to its
   * response being produced (`until="produced"`) and, when the request is Node's, to the response being handed to
   * the socket (`until="flushed"`, which adds the wait for the server fiber to write it). Graph's side also waits for
   * the event loop before the handler starts.
   */
  const observe = (until: "produced" | "flushed", startedAt: bigint, at: bigint) =>
    (until === "produced" ? answerProduced : answerFlushed).update(Number(at - startedAt) / 1e9)
  const timedNotifications = Effect.fnUntraced(function*(request: HttpServerRequest.HttpServerRequest) {
    const clock = yield* Clock.Clock
    const startedAt = clock.currentTimeNanosUnsafe()
    // The root of each change's trace: webhook → decrypt → map → SetPresence (docs/operations.md, OpenTelemetry); none
    // without a tracing backend (ChangeTrace.ts), where nothing would ever read it.
    const response = (yield* tracing)
      // No stack trace: capturing one on every POST costs more than the rest of the span.
      ? yield* notifications(request).pipe(Effect.withSpan("NotificationRoutes.notifications", undefined, { captureStackTrace: false }))
      : yield* notifications(request)
    yield* observe("produced", startedAt, clock.currentTimeNanosUnsafe())
    const nodeResponse = serverResponse(request)
    if (nodeResponse !== undefined) {
      // Listening starts now, before the server writes the answer, with this fiber's context (the tenant's attributes).
      recordFlushed(nodeResponse, clock, startedAt, yield* Effect.context<never>())
    }
    return response
  })

  // Whether a new connection's first POST may come from a sender that has gone (LoopWatch.ts), for both paths.
  yield* watchLoop
  yield* router.add("POST", settings.notificationPath as HttpRouter.PathInput, timedNotifications)
  yield* takenBeforeTheServer(settings, inbox)
  yield* router.add("POST", settings.lifecyclePath as HttpRouter.PathInput, lifecycle)
}))

/**
 * The notification POST without a query string is taken from Node's server before effect's (WebhookNode.ts), when
 * this process's server serves the routes and no tracing backend wants the POST's span; the route serves the rest.
 */
const takenBeforeTheServer = Effect.fnUntraced(function*(
  settings: { readonly notificationPath: string; readonly maxBodyBytes: number },
  inbox: NotificationsInbox["Service"]
) {
  const server = yield* Effect.serviceOption(HttpServer.HttpServer)
  if (Option.isNone(server) || !("port" in server.value.address) || (yield* tracing)) return
  const context = yield* Effect.context<never>()
  const handler = nodeNotifications({ context, maxBodyBytes: settings.maxBodyBytes, accept: inbox.acceptNotifications })
  const remove = takeRequests(server.value.address.port, "POST", settings.notificationPath, handler)
  if (remove !== undefined) yield* Effect.addFinalizer(() => Effect.sync(remove))
})

/**
 * The inbox with everything it needs but SubscriptionSettings: certificate store, decryption workers, validation-token
 * verifier. Provide it once, outside `HttpRouter.serve`, so the routes, SubscriptionManager and PresenceSource share it.
 */
export const NotificationPipeline = Layer.merge(NotificationsInbox.layer, NotificationsWarmUp.layer).pipe(
  Layer.provideMerge(DecryptPool.layer),
  Layer.provideMerge(ValidationTokens.layer),
  Layer.provideMerge(CertificateStore.layer)
)
