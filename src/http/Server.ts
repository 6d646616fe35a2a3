/**
 * The connector's one HTTP server: status page and probes, the Graph webhook and the PBX websocket endpoint share a
 * port, each contributed as an `HttpRouter` layer by its own module.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { createServer as createNetServer } from "node:net"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer, Random } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { defaultPbxSettings } from "../pbx/PbxSettings.ts"
import { ephemeralPortRange, keepAliveTimeoutMillis, logListenBacklog, publicBacklog } from "./Listen.ts"

export interface ServerOptions {
  readonly host: string
  readonly port: number
  /** The largest websocket frame (or message) accepted; larger ones close the connection (the PBX's pbx.maxFrameBytes). */
  readonly maxFrameBytes?: number | undefined
  /** The port clients reach (not a loopback port behind the front): its accept queue is logged at start-up. */
  readonly public?: boolean | undefined
}

/** This process's servers by port while they listen: the front (src/cluster/RunnerFront.ts) hands them requests directly. */
const listening = new Map<number, Server>()

/** The server of this process listening on `port` (a tenant's connector on its loopback port), if any. */
export const localServer = (port: number): Server | undefined => listening.get(port)

/** A request taken before effect's HTTP server (src/graph/notifications/WebhookNode.ts). */
export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void

/** The handlers of a listed server, by method and path (the request's exact URL: none with a query string). */
const nodeHandlers = new WeakMap<Server, Map<string, NodeHandler>>()

/**
 * `handler` takes every `method` request for exactly `path` on this process's server listening on `port`, before
 * effect's HTTP server sees it — whether it arrived on the server's own socket or was handed over by the front
 * (RunnerFront.ts emits `request` on it). Returns the removal, or undefined when no server of this process listens
 * there (a server made elsewhere, or requests built in memory): the routes then serve every request as before.
 */
export const takeRequests = (port: number, method: string, path: string, handler: NodeHandler): (() => void) | undefined => {
  const server = listening.get(port)
  if (server === undefined) return undefined
  const key = `${method} ${path}`
  let handlers = nodeHandlers.get(server)
  if (handlers === undefined) {
    handlers = new Map()
    nodeHandlers.set(server, handlers)
    const taken = handlers
    const emit = server.emit
    server.emit = function(this: Server, event: string | symbol, ...args: Array<unknown>) {
      if (event === "request" && taken.size > 0) {
        const req = args[0] as IncomingMessage
        const found = taken.get(`${req.method} ${req.url}`)
        if (found !== undefined) return (found(req, args[1] as ServerResponse), true)
      }
      return Reflect.apply(emit, this, [event, ...args]) as boolean
    } as typeof server.emit
  }
  handlers.set(key, handler)
  const mine = handlers
  return () => {
    if (mine.get(key) === handler) mine.delete(key)
  }
}

/**
 * The handler `takeRequests` gave for `method` and `path` (the exact URL) on `server`, if any: the front passes a body it
 * has read already straight to it (src/cluster/FrontHttp.ts `handBody`).
 */
export const nodeHandlerOf = (server: Server, method: string, path: string): NodeHandler | undefined =>
  nodeHandlers.get(server)?.get(`${method} ${path}`)

const listed = (server: Server): Server => {
  server.once("listening", () => {
    const address = server.address()
    if (address === null || typeof address !== "object") return
    listening.set(address.port, server)
    server.once("close", () => listening.get(address.port) === server && listening.delete(address.port))
  })
  return server
}

/**
 * Open PBX websockets and status-page event streams never end by themselves, so a stop waits for them only briefly:
 * by then the flow has already flushed its PBX writes.
 */
export const nodeServer = (options: ServerOptions) =>
  NodeHttpServer.layer(() => listed(createServer({ keepAliveTimeout: keepAliveTimeoutMillis })), {
    host: options.host,
    port: options.port,
    backlog: publicBacklog,
    gracefulShutdownTimeout: "2 seconds",
    websocket: { maxPayload: options.maxFrameBytes ?? defaultPbxSettings.maxFrameBytes }
  })

/** On every answer of the server: a browser must never guess another content type than the one given. */
export const noSniff = HttpRouter.middleware(
  (effect) => Effect.map(effect, HttpServerResponse.setHeader("x-content-type-options", "nosniff")),
  { global: true }
)

/** Unknown paths are answered by a route of the router, so that the middleware's headers reach them too. */
const notFound = HttpRouter.add("*", "/*", HttpServerResponse.text("Not found", { status: 404 }))

/** Serves the route layers on one Node HTTP server; the result also provides `HttpServer` (for the bound address). */
export const serveRoutes = <E, R>(routes: Layer.Layer<never, E, R>, options: ServerOptions) =>
  HttpRouter.serve(Layer.mergeAll(routes, notFound, noSniff), { disableLogger: true, disableListenLog: true }).pipe(
    Layer.merge(options.public === true ? Layer.effectDiscard(logListenBacklog(options.port)) : Layer.empty),
    Layer.provideMerge(nodeServer(options))
  )

/** The lowest port `freePort` picks outside the ephemeral range (below it the well-known services' ports are many). */
const lowestPicked = 10_000

/** Whether `port` can be listened on at `host` now; it is released again before this resolves. */
const listensOn = (host: string, port: number) =>
  new Promise<number | undefined>((resolve) => {
    const server = createNetServer()
    server.once("error", () => resolve(undefined))
    server.listen(port, host, () => {
      const address = server.address()
      const bound = typeof address === "object" && address !== null ? address.port : undefined
      server.close(() => resolve(bound))
    })
  })

/**
 * A port that was free a moment ago on `host`. Graph must know the webhook's public URL before the server listens, so
 * port 0 cannot be used where the URL is part of the configuration (the demo, the bench and the tests). The port is
 * picked outside the kernel's ephemeral range where that range is known: one from inside it can be handed to any
 * socket bound to port 0 (a simulator, a tenant's loopback server, another program's tests) or to an outgoing
 * connection before its server listens, which then fails with EADDRINUSE — a tenants-50 connector exited during its
 * start-up so (docs/performance.md, "tenants-50: the start-up exit"). Outside the range only an explicit bind takes it.
 */
export const freePort = (host = "127.0.0.1") =>
  Effect.gen(function*() {
    const range = ephemeralPortRange()
    const spans: ReadonlyArray<readonly [number, number]> = range === undefined
      ? []
      : ([[lowestPicked, range[0] - 1], [range[1] + 1, 65_535]] as const).filter(([low, high]) => low <= high)
    const size = spans.reduce((total, [low, high]) => total + high - low + 1, 0)
    for (let attempt = 0; size > 0 && attempt < 100; attempt++) {
      let at = yield* Random.nextIntBetween(0, size, { halfOpen: true })
      for (const [low, high] of spans) {
        if (at <= high - low) {
          const port = yield* Effect.promise(() => listensOn(host, low + at))
          if (port !== undefined) return port
          break
        }
        at -= high - low + 1
      }
    }
    // No range known (not Linux) or nothing free outside it: any free port, as the kernel picks it.
    const port = yield* Effect.promise(() => listensOn(host, 0))
    if (port === undefined) return yield* Effect.die(new Error(`no free port on ${host}`))
    return port
  })
