/**
 * Bounds on what a PBX connection may send. The websocket server refuses any frame over `maxFrameBytes` as soon as its
 * header announces it (the `ws` library's `maxPayload`, set on the connector's one server: src/http/Server.ts), so a
 * logged-in peer never makes the connector buffer more. Before the peer has logged in, far less is accepted: the raw
 * connection is watched, and more than `loginBytes` in all closes it before the websocket layer has buffered a large
 * frame.
 */
import { Cause } from "effect"

/** The TCP socket under an upgraded request, as far as the connection needs it. */
export interface RawSocket {
  readonly cork: () => void
  readonly uncork: () => void
  readonly on: (event: "data", listener: (chunk: Buffer) => void) => unknown
  readonly off: (event: "data", listener: (chunk: Buffer) => void) => unknown
  readonly destroy: () => unknown
}

export const isRawSocket = (value: unknown): value is RawSocket =>
  typeof value === "object" && value !== null &&
  ["cork", "uncork", "on", "off", "destroy"].every((name) => typeof (value as Record<string, unknown>)[name] === "function")

/**
 * Counts the bytes the peer sends until `stop` is called; past `limit` it destroys the socket and calls `exceeded`
 * with the count. Bytes that arrived before the watch started are not counted (at most one read of the socket).
 */
export const watchBytes = (socket: RawSocket, limit: number, exceeded: (bytes: number) => void) => {
  let received = 0
  let stopped = false
  const onData = (chunk: Buffer) => {
    received += chunk.length
    if (received <= limit || stopped) return
    stop()
    socket.destroy()
    exceeded(received)
  }
  const stop = () => {
    if (stopped) return
    stopped = true
    socket.off("data", onData)
  }
  socket.on("data", onData)
  return { stop }
}

/**
 * Whether a socket ended because the websocket layer refused a frame over its `maxPayload`: the `ws` library fails the
 * read with a RangeError coded WS_ERR_UNSUPPORTED_MESSAGE_LENGTH (and closes with 1009), nested in the socket error.
 */
export const endedByOversizedFrame = (cause: Cause.Cause<unknown>): boolean => {
  const seen = new Set<unknown>()
  const search = (value: unknown, depth: number): boolean => {
    if (typeof value !== "object" || value === null || depth > 6 || seen.has(value)) return false
    seen.add(value)
    const record = value as Record<string, unknown>
    if (record["code"] === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") return true
    return ["cause", "reason", "error"].some((key) => search(record[key], depth + 1))
  }
  return search(Cause.squash(cause), 0)
}
