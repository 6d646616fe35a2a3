/**
 * The connector's one HTTP server: status page and probes, the Graph webhook and the PBX websocket endpoint share a
 * port, each contributed as an `HttpRouter` layer by its own module.
 */
import { createServer, type Server } from "node:http"
import { createServer as createNetServer } from "node:net"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { defaultPbxSettings } from "../pbx/PbxSettings.ts"
import { keepAliveTimeoutMillis, logListenBacklog, publicBacklog } from "./Listen.ts"

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

/**
 * A port that was free a moment ago on `host`. Graph must know the webhook's public URL before the server listens, so
 * port 0 cannot be used where the URL is part of the configuration (the demo and the tests).
 */
export const freePort = (host = "127.0.0.1") =>
  Effect.callback<number>((resume) => {
    const server = createNetServer()
    server.listen(0, host, () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resume(Effect.succeed(port)))
    })
  })
