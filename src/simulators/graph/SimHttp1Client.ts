/**
 * A plain HTTP/1.1 client for the Graph simulator's POSTs to `http:` webhooks: one write per request (request line,
 * headers and body), the answer read from the socket by a small parser (status, headers, a body by Content-Length,
 * chunks or the connection's end), and keep-alive connections in a pool per origin without a limit — a POST takes the
 * idle connection used last, else opens a new one (SimWebhookClient.ts says why). On the wire it is what Node's
 * `http.request` sends; it skips that client's objects, events and streams, which cost more than the POST's own
 * system calls when a simulator POSTs once per change beside the connector it tests (docs/performance.md,
 * "tenants-50: the simulators' cost, second round").
 */
import net from "node:net"

export interface Http1Answer {
  readonly status: number
  readonly contentType: string
  readonly text: string
}

interface InFlight {
  readonly resolve: (answer: Http1Answer) => void
  readonly reject: (error: Error) => void
  readonly timer: ReturnType<typeof setTimeout>
}

/** A pooled connection: what it has read of the current answer, and who waits for it. */
interface Connection {
  readonly socket: net.Socket
  readonly origin: string
  buffer: Buffer
  current: InFlight | undefined
}

const idle = new Map<string, Array<Connection>>()

const CRLF2 = Buffer.from("\r\n\r\n")

const release = (connection: Connection) => {
  let list = idle.get(connection.origin)
  if (list === undefined) idle.set(connection.origin, (list = []))
  list.push(connection)
}

const forget = (connection: Connection) => {
  const list = idle.get(connection.origin)
  const at = list?.indexOf(connection) ?? -1
  if (at >= 0) list!.splice(at, 1)
}

/** The end of a chunked body in `buffer` from `from` (the index after its last CRLF), with the body; undefined if incomplete. */
const chunkedBody = (buffer: Buffer, from: number): { readonly end: number; readonly body: Buffer } | undefined => {
  const parts: Array<Buffer> = []
  let at = from
  for (;;) {
    const lineEnd = buffer.indexOf("\r\n", at, "latin1")
    if (lineEnd < 0) return undefined
    const size = Number.parseInt(buffer.toString("latin1", at, lineEnd).split(";")[0]!, 16)
    if (!Number.isFinite(size) || size < 0) throw new Error("malformed chunk size")
    if (size === 0) {
      // Trailers (none expected), then an empty line.
      const end = buffer.indexOf(CRLF2, lineEnd)
      return end < 0 ? undefined : { end: end + 4, body: Buffer.concat(parts) }
    }
    if (buffer.length < lineEnd + 2 + size + 2) return undefined
    parts.push(buffer.subarray(lineEnd + 2, lineEnd + 2 + size))
    at = lineEnd + 2 + size + 2
  }
}

/** A complete answer at the start of `buffer`, or undefined while it is incomplete (`ended`: the server closed). */
const parseAnswer = (buffer: Buffer, ended: boolean): { readonly answer: Http1Answer; readonly keep: boolean; readonly end: number } | undefined => {
  const headEnd = buffer.indexOf(CRLF2)
  if (headEnd < 0) return undefined
  const lines = buffer.toString("latin1", 0, headEnd).split("\r\n")
  const status = Number(lines[0]!.split(" ")[1])
  if (!(status >= 100 && status <= 999)) throw new Error(`malformed status line ${lines[0]}`)
  const headers = new Map<string, string>()
  for (let i = 1; i < lines.length; i++) {
    const colon = lines[i]!.indexOf(":")
    if (colon > 0) headers.set(lines[i]!.slice(0, colon).trim().toLowerCase(), lines[i]!.slice(colon + 1).trim())
  }
  const bodyStart = headEnd + 4
  const answer = (body: Buffer) => ({ status, contentType: headers.get("content-type") ?? "", text: body.toString("utf8") })
  const keep = headers.get("connection")?.toLowerCase() !== "close"
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) return { answer: answer(Buffer.alloc(0)), keep, end: bodyStart }
  if (headers.get("transfer-encoding")?.toLowerCase().includes("chunked")) {
    const chunked = chunkedBody(buffer, bodyStart)
    return chunked === undefined ? undefined : { answer: answer(chunked.body), keep, end: chunked.end }
  }
  const length = headers.get("content-length")
  if (length !== undefined) {
    const end = bodyStart + Number(length)
    return buffer.length < end ? undefined : { answer: answer(buffer.subarray(bodyStart, end)), keep, end }
  }
  // No length: the body runs to the connection's end.
  return ended ? { answer: answer(buffer.subarray(bodyStart)), keep: false, end: buffer.length } : undefined
}

const settle = (connection: Connection, ended: boolean) => {
  const current = connection.current
  if (current === undefined) return
  let parsed: ReturnType<typeof parseAnswer>
  try {
    parsed = parseAnswer(connection.buffer, ended)
  } catch (error) {
    return fail(connection, error as Error)
  }
  if (parsed === undefined) return ended ? fail(connection, new Error("connection closed before the answer was complete")) : undefined
  if (parsed.answer.status < 200) {
    // An interim answer (100 Continue): the final one follows.
    connection.buffer = connection.buffer.subarray(parsed.end)
    return settle(connection, ended)
  }
  clearTimeout(current.timer)
  connection.current = undefined
  const reusable = parsed.keep && !ended && parsed.end === connection.buffer.length
  connection.buffer = Buffer.alloc(0)
  if (reusable) release(connection)
  else connection.socket.destroy()
  current.resolve(parsed.answer)
}

const fail = (connection: Connection, error: Error) => {
  const current = connection.current
  connection.current = undefined
  forget(connection)
  connection.socket.destroy()
  if (current !== undefined) {
    clearTimeout(current.timer)
    current.reject(error)
  }
}

const open = (origin: string, hostname: string, port: number): Connection => {
  const socket = net.connect({ host: hostname, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 1000 })
  const connection: Connection = { socket, origin, buffer: Buffer.alloc(0), current: undefined }
  socket.on("data", (data: Buffer) => {
    if (connection.current === undefined) return fail(connection, new Error("data without a request"))
    connection.buffer = connection.buffer.length === 0 ? data : Buffer.concat([connection.buffer, data])
    settle(connection, false)
  })
  socket.on("end", () => (connection.current === undefined ? fail(connection, new Error("closed")) : settle(connection, true)))
  socket.on("error", (error) => fail(connection, error))
  socket.on("close", () => fail(connection, new Error("connection closed")))
  return connection
}

/**
 * One request with a body over the pool. `path` includes the query; `headers` are sent as given, with Host,
 * Content-Length and Connection added. Rejects when the answer is not complete within `timeoutMillis` (the connection
 * is closed then, never used again) or the connection fails.
 */
export const http1Post = (
  target: { readonly hostname: string; readonly port: number; readonly path: string },
  headers: Readonly<Record<string, string>>,
  body: string,
  timeoutMillis: number
): Promise<Http1Answer> =>
  new Promise((resolve, reject) => {
    const origin = `${target.hostname}:${target.port}`
    const connection = idle.get(origin)?.pop() ?? open(origin, target.hostname, target.port)
    const timer = setTimeout(() => fail(connection, new Error(`no answer within ${timeoutMillis} ms`)), timeoutMillis)
    // As an abort signal's timer: it does not keep the process alive by itself.
    timer.unref()
    connection.current = { resolve, reject, timer }
    const host = target.hostname.includes(":") ? `[${target.hostname}]` : target.hostname
    let head = `POST ${target.path} HTTP/1.1\r\nHost: ${host}:${target.port}\r\n`
    for (const name in headers) head += `${name}: ${headers[name]}\r\n`
    connection.socket.write(`${head}Content-Length: ${Buffer.byteLength(body)}\r\nConnection: keep-alive\r\n\r\n${body}`)
  })
