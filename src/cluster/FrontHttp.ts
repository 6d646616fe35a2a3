/** The HTTP pieces of a runner's public port (RunnerFront.ts, FrontGraph.ts): plain answers and passing a request on. */
import { type IncomingMessage, request, type ServerResponse } from "node:http"
import { clientAddressHeader, relayedAddress } from "../http/ClientAddress.ts"

/** Set on a forwarded request: a runner that is not the owner either answers 503 instead of forwarding again. */
export const forwardedHeader = "x-connector-forwarded"

export const answer = (res: ServerResponse, status: number, body: string, type = "text/plain; charset=utf-8") => {
  res.writeHead(status, { "content-type": type, "cache-control": "no-store", "x-content-type-options": "nosniff" })
  res.end(body)
}

/** A runner id (its public `host:port`) as an address to connect to. */
export const hostPort = (runner: string): { host: string; port: number } | undefined => {
  const at = runner.lastIndexOf(":")
  const port = Number(runner.slice(at + 1))
  return at > 0 && Number.isInteger(port) && port > 0 ? { host: runner.slice(0, at), port } : undefined
}

/** With a body read already: a target that has not begun to answer within this is given up (it is stopping or stalled). */
export const replyWithinMillis = 1000

/**
 * Passes the request on to `target`: its body streamed, or `body` when it has been read already — then `onError` also
 * takes an answer of 5xx or no answer within `replyWithinMillis` (the target is stopping), since the request can be
 * answered otherwise.
 */
export const passOn = (
  options: { readonly runnerId: string },
  target: { readonly host: string; readonly port: number; readonly path: string },
  req: IncomingMessage,
  res: ServerResponse,
  onError: () => void,
  body?: Buffer
) => {
  let failed = false
  const fail = () => {
    if (failed) return
    failed = true
    onError()
  }
  const upstream = request({
    host: target.host,
    port: target.port,
    method: req.method,
    path: target.path,
    headers: { ...req.headers, [forwardedHeader]: options.runnerId, [clientAddressHeader]: relayedAddress(req.socket.remoteAddress) }
  }, (reply) => {
    clearTimeout(timer)
    if (failed) return reply.resume()
    if (body !== undefined && (reply.statusCode ?? 502) >= 500) {
      reply.resume()
      return fail()
    }
    res.writeHead(reply.statusCode ?? 502, reply.headers)
    reply.pipe(res)
  })
  const timer = body === undefined ? undefined : setTimeout(() => {
    fail()
    upstream.destroy()
  }, replyWithinMillis)
  upstream.on("error", () => {
    clearTimeout(timer)
    fail()
  })
  if (body === undefined) req.pipe(upstream)
  else upstream.end(body)
}

