/**
 * The change-notification POST taken from Node's HTTP server before effect's HttpServer and router (docs/performance.md,
 * "Fifth round: main thread per POST"). With many tenants nearly every POST carries one item, and the request's way
 * through the Effect server — a fiber and a scope per request, the router, the request's header copy, the body as an
 * Effect stream, the response written by the server fiber — cost more of the main thread than checking and queueing
 * the item. Here the same checks run on plain callbacks: the body read within `maxBodyBytes`, parsed and decoded by the
 * wire schema, the sender-gone check of a connection's first POST, the items checked and queued by the inbox's
 * `accept` (one effect, run on the tenant's context), a 202 with the router's `nosniff` header, and both answer times
 * in `connector_webhook_response_seconds`. Every refusal is logged and counted as on the route (Rejections.ts). The
 * validation handshake (a query string), the lifecycle path and, with a tracing backend, every POST stay on the route.
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import type { Socket } from "node:net"
import { Cause, Clock, Context, Effect, Exit } from "effect"
import { webhookResponseSecondsOf } from "../../domain/Metrics.ts"
import { loopWasHeld } from "../../http/LoopWatch.ts"
import { parseJsonBody } from "./JsonBody.ts"
import { decodeChangeNotifications, type ChangeNotificationCollection } from "./Notifications.ts"
import { logRejected, makeRejections } from "./Rejections.ts"

/** The webhook answer histogram per `until`, each tenant's series made once (it is observed twice per POST). */
export const answerProduced = webhookResponseSecondsOf("produced")
export const answerFlushed = webhookResponseSecondsOf("flushed")

/**
 * Records the answer's flushed time once: when the response is finished or its connection closed, whichever is first,
 * with `context`'s metric attributes (the tenant's), without a fiber of its own per POST.
 */
export const recordFlushed = (res: ServerResponse, clock: Clock.Clock, startedAt: bigint, context: Context.Context<never>) => {
  let observed = false
  const done = () => {
    if (observed) return
    observed = true
    answerFlushed.updateUnsafe(Number(clock.currentTimeNanosUnsafe() - startedAt) / 1e9, context)
  }
  res.once("finish", done)
  res.once("close", done)
}

/** Connections that carried a POST already (on the route or here): only a connection's first POST waits for a poll. */
export const served = new WeakSet<Socket>()

/** The items of a POST whose sender closed the connection before the answer: counted and logged as `client_gone`. */
export const reportGone = (items: number) => {
  const rejections = makeRejections()
  rejections.add("client_gone", "the sender closed the connection before the answer (it sends the notifications again)", {}, items)
  return rejections.report(items)
}

export interface NodeWebhookOptions {
  /** The tenant's context: its services, logger, clock and metric attributes. */
  readonly context: Context.Context<never>
  readonly maxBodyBytes: number
  readonly accept: (body: ChangeNotificationCollection) => Effect.Effect<number>
}

const noSniff = { "x-content-type-options": "nosniff" } as const

const answerText = (res: ServerResponse, status: number, text: string) => {
  if (res.destroyed || res.headersSent) return
  res.writeHead(status, { ...noSniff, "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text) })
  res.end(text)
}

/**
 * The body within `maxBodyBytes` to `then`; over it (declared, or while a body without Content-Length is read: the rest
 * is read and dropped) `tooLarge` with the line to log and the answer's text.
 */
const readBody = (req: IncomingMessage, maxBodyBytes: number, tooLarge: (log: string, text: string) => void, then: (bytes: Buffer) => void) => {
  const declared = Number(req.headers["content-length"] ?? "0")
  if (Number.isFinite(declared) && declared > maxBodyBytes) {
    req.resume()
    return tooLarge(`body of ${declared} bytes exceeds the limit of ${maxBodyBytes}`, "body too large")
  }
  const chunks: Array<Buffer> = []
  let length = 0
  let over = false
  req.on("data", (chunk: Buffer) => {
    if (over) return
    length += chunk.length
    if (length <= maxBodyBytes) return void chunks.push(chunk)
    over = true
    chunks.length = 0
    tooLarge(`request body could not be read within the limit of ${maxBodyBytes} bytes`, "unreadable or too large body")
  })
  req.on("end", () => {
    if (!over) then(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length))
  })
}

/**
 * A connection's first POST, after the event loop was held long enough for its sender to have given up while it waited
 * in the listen queue (LoopWatch.ts), waits for the loop's next poll: such a sender has closed the connection by then
 * (`gone`). Other POSTs go on at once: later ones on a kept connection, and first ones while the loop keeps turning.
 */
const unlessGone = (req: IncomingMessage, res: ServerResponse, gone: () => void, then: () => void) => {
  const connection = req.socket
  if (served.has(connection)) return then()
  served.add(connection)
  if (!loopWasHeld()) return then()
  setImmediate(() =>
    setImmediate(() => (!res.destroyed && !connection.destroyed && !connection.readableEnded ? then() : gone()))
  )
}

/** A handler for `POST {notificationPath}` without a query string: always takes the request. */
export const nodeNotifications = (options: NodeWebhookOptions) => {
  const { context, maxBodyBytes } = options
  const run = Effect.runForkWith(context)
  const clock = Context.get(context, Clock.Clock)
  const refuse = (res: ServerResponse, reason: "malformed" | "too_large", log: string, status: number, text: string) => {
    run(logRejected(reason, log))
    answerText(res, status, text)
  }

  /** The answer's two times, as the route records them: produced now, flushed when the socket took it (or closed). */
  const answered = (res: ServerResponse, startedAt: bigint) => {
    answerProduced.updateUnsafe(Number(clock.currentTimeNanosUnsafe() - startedAt) / 1e9, context)
    recordFlushed(res, clock, startedAt, context)
  }

  const queue = (res: ServerResponse, body: ChangeNotificationCollection, startedAt: bigint) => {
    const fiber = run(options.accept(body))
    const reply = (exit: Exit.Exit<number>) => {
      if (res.destroyed) return
      if (Exit.isFailure(exit)) {
        run(Effect.logError("the notification webhook failed", Cause.pretty(exit.cause)))
        return answerText(res, 500, "internal error")
      }
      answered(res, startedAt)
      res.writeHead(202, noSniff)
      res.end()
    }
    const exit = fiber.pollUnsafe()
    if (exit !== undefined) reply(exit)
    else fiber.addObserver(reply)
  }

  const received = (req: IncomingMessage, res: ServerResponse, bytes: Buffer, startedAt: bigint) => {
    let json: unknown
    try {
      json = parseJsonBody(bytes)
    } catch {
      return refuse(res, "malformed", "body is not JSON", 400, "malformed JSON")
    }
    const decoded = decodeChangeNotifications(json)
    if (Exit.isFailure(decoded)) {
      return refuse(res, "malformed", "body is not a change notification collection", 400, "not a change notification collection")
    }
    const body = decoded.value
    unlessGone(req, res, () => {
      run(reportGone(body.value.length))
      // 499 (as proxies log a request whose client closed it first): an answer nobody reads, timed as any other.
      if (res.destroyed) return
      answered(res, startedAt)
      res.writeHead(499, noSniff)
      res.end()
    }, () => queue(res, body, startedAt))
  }

  return (req: IncomingMessage, res: ServerResponse): void => {
    const startedAt = clock.currentTimeNanosUnsafe()
    readBody(req, maxBodyBytes, (log, text) => refuse(res, "too_large", log, 400, text), (bytes) => {
      if (res.destroyed) return
      try {
        received(req, res, bytes, startedAt)
      } catch (defect) {
        run(Effect.logError("the notification webhook failed", String(defect)))
        answerText(res, 500, "internal error")
      }
    })
  }
}
