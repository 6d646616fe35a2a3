/**
 * The public port's listening sockets (docs/performance.md, "tenants-50"). Since libuv 1.45 (libuv/libuv#3696, in
 * Node 20 and later) a listening socket accepts **one** pending connection per turn of the event loop, however many
 * wait. With 50 tenants the main thread's turns last hundreds of ms during a burst — mostly waiting for a CPU on a busy
 * machine — so new connections waited seconds in the kernel's accept queue. On Linux the port is therefore opened by
 * `acceptSockets` sockets sharing it (SO_REUSEPORT): the kernel deals new connections out over them and each accepts
 * one per turn. One HTTP server serves them all — the others hand their connections to it — so its keep-alive,
 * header and request timeouts and its `closeAllConnections` cover every connection.
 */
import type { Server } from "node:http"
import { createServer as createNetServer, type Server as NetServer } from "node:net"
import { publicBacklog } from "../http/Listen.ts"

/**
 * How many sockets listen on the public port (Linux; elsewhere 1, without SO_REUSEPORT's dealing). At 256 a queue of
 * 2,000 waiting connections is taken in ≈ 10–15 turns instead of ≈ 250 with 8; each further socket costs ≈ 4 KB.
 */
export const acceptSockets = process.platform === "linux" ? 256 : 1

/** Listens on `port` (0: a free one), `reusePort` when several sockets share it; the port it got. */
const listenOn = (server: NetServer, host: string, port: number, reusePort: boolean) =>
  new Promise<number>((resolve, reject) => {
    server.once("error", reject)
    server.listen({ port, host, backlog: publicBacklog, reusePort }, () => {
      server.off("error", reject)
      const address = server.address()
      resolve(typeof address === "object" && address !== null ? address.port : port)
    })
  })

export interface FrontSockets {
  readonly port: number
  /** Stops listening on every socket (the HTTP server's connections are its own to close). */
  readonly close: () => void
}

/**
 * `server` listens on `host`:`port` with `count` sockets: its own, and `count - 1` more that give it each connection
 * they accept. A port given explicitly is first bound alone, so that one already in use (another process of the
 * connector among them) fails as it always did, rather than being shared through SO_REUSEPORT.
 */
export const listenShared = async (server: Server, host: string, port: number, count = acceptSockets): Promise<FrontSockets> => {
  const shared = count > 1
  if (shared && port !== 0) {
    const probe = createNetServer()
    await listenOn(probe, host, port, false)
    await new Promise((resolve) => probe.close(resolve))
  }
  const extras: Array<NetServer> = []
  const close = () => {
    for (const extra of extras) extra.close()
    server.close()
  }
  try {
    const bound = await listenOn(server, host, port, shared)
    for (let i = 1; i < count; i++) {
      // As Node's HTTP server sets its own accepted sockets: no Nagle delay on the answers.
      const extra = createNetServer({ noDelay: true }, (socket) => server.emit("connection", socket))
      extras.push(extra)
      await listenOn(extra, host, bound, true)
    }
    return { port: bound, close }
  } catch (error) {
    close()
    throw error
  }
}
