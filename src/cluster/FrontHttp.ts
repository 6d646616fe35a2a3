/**
 * The HTTP pieces of a runner's public port (RunnerFront.ts, FrontGraph.ts): plain answers, passing a request on, and
 * handing a request whose body was read to a handler in this process.
 */
import { IncomingMessage, type OutgoingHttpHeaders, request, ServerResponse } from "node:http"
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

/**
 * Hands a request whose body was read already (`body`) to `handler`, the Node-level handler of a server in this
 * process (src/http/Server.ts `takeRequests`: a tenant's notification POST), instead of a second HTTP request to that
 * server over the loopback interface (docs/scaling.md, "What a change costs"): the handler gets a request carrying
 * the body and the headers a forwarded request carries (on the client's socket, which it watches for a sender gone),
 * and an answer object whose status, headers and body are relayed to `res` — or, as `passOn` with a body, `onError`
 * runs instead when it is 5xx or has not come within `replyWithinMillis` (the answer that comes later is dropped).
 */
export const handBody = (
  options: { readonly runnerId: string },
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  path: string,
  req: IncomingMessage,
  res: ServerResponse,
  onError: () => void,
  body: Buffer
) => {
  const copy = new IncomingMessage(req.socket)
  copy.method = req.method
  copy.url = path
  copy.httpVersion = req.httpVersion
  copy.httpVersionMajor = req.httpVersionMajor
  copy.httpVersionMinor = req.httpVersionMinor
  copy.headers = {
    ...req.headers,
    "content-length": String(body.length),
    [forwardedHeader]: options.runnerId,
    [clientAddressHeader]: relayedAddress(req.socket.remoteAddress)
  }
  // The body is all there: nothing to read from the socket (the front's parser has it), and the request is complete
  // (an incomplete one ending would count as aborted and destroy the client's socket).
  copy.complete = true
  copy._read = () => {}
  copy.push(body)
  copy.push(null)
  let decided = false
  const decide = (relayed: () => void) => {
    if (decided) return
    decided = true
    clearTimeout(timer)
    relayed()
  }
  const timer = setTimeout(() => decide(onError), replyWithinMillis)
  const relay = new ServerResponse(copy)
  let status = 200
  let headers: OutgoingHttpHeaders | undefined
  relay.writeHead = ((code: number, ...rest: Array<unknown>) => {
    status = code
    const given = rest.find((value) => typeof value === "object" && value !== null && !Array.isArray(value))
    headers = given as OutgoingHttpHeaders | undefined
    return relay
  }) as typeof relay.writeHead
  relay.end = ((chunk?: unknown) => {
    decide(() => {
      if (status >= 500) return onError()
      res.writeHead(status, headers)
      res.end(typeof chunk === "string" || Buffer.isBuffer(chunk) ? chunk : undefined)
    })
    return relay
  }) as typeof relay.end
  // The handler times its answer's flush on these (the answer written to the client's socket, or the socket closed).
  res.once("finish", () => relay.emit("finish"))
  res.once("close", () => relay.emit("close"))
  handler(copy, relay)
}
