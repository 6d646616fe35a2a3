/**
 * A runner's public HTTP port in a cluster (docs/scaling.md). A load balancer may send anything to any runner:
 * `/readyz` and `/healthz` answer for the runner itself, `/cluster/status` shows the cluster (admin password), and every other request
 * — the status page, the Graph webhook, a PBX websocket — is for a tenant (`/t/<tenant>/…`, or the configuration
 * file's `default` tenant without the prefix). It goes to the tenant's connector on this runner when this runner owns
 * the tenant, else it is forwarded once to the owner's runner (from the store's owner record), else 503: a PBX or
 * Graph tries again and, after a failover, reaches the new owner. A cluster runner takes Graph's notifications itself
 * (`graph`, FrontGraph.ts): they never wait for an owner.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { connect, type Socket } from "node:net"
import type { Duplex } from "node:stream"
import { Effect, type Scope } from "effect"
import type { TenantId } from "../state/StateStore.ts"
import type { SocketMode } from "./SocketMode.ts"
import { type GraphIngress, graphPost, graphRoute } from "./FrontGraph.ts"
import { answer, forwardedHeader, hostPort, passOn } from "./FrontHttp.ts"
import { listenShared } from "./FrontSockets.ts"
import { clientAddressHeader, relayedAddress } from "../http/ClientAddress.ts"
import { keepAliveTimeoutMillis, logListenBacklog } from "../http/Listen.ts"
import { localServer } from "../http/Server.ts"

export interface FrontOptions {
  readonly host: string
  readonly port: number
  /** This runner's id (its advertised host:port). */
  readonly runnerId: string
  /**
   * How long an idle kept-alive connection stays open (ms). A cluster runner keeps Node's 5 s: behind a TCP load
   * balancer a kept connection is pinned to its runner, so a runner that stops being ready must lose its clients soon.
   */
  readonly keepAliveTimeout?: number | undefined
  /** The tenant served without a path prefix, if any. */
  readonly defaultTenant: TenantId | undefined
  /** The loopback port of a tenant's connector when it runs here. */
  readonly local: (tenant: TenantId) => number | undefined
  readonly known: (tenant: TenantId) => Promise<boolean>
  /** The runner id of the tenant's owner in the store, if any. */
  readonly owner: (tenant: TenantId) => Promise<string | undefined>
  /**
   * Why this runner cannot take traffic, or undefined when it can. Without it (one process, no cluster) `/readyz` and
   * `/healthz` are the default tenant's own, as for a single-tenant connector.
   */
  readonly notReady?: (() => Promise<string | undefined>) | undefined
  readonly status: () => Promise<unknown>
  /** Where the process's status (JSON) is served; default `/cluster/status`; null: nowhere (the path is the default tenant's). */
  readonly statusPath?: string | null | undefined
  /** The admin password check for the status path (Authorization header, the client's address). */
  readonly admit: (authorization: string | undefined, source: string) => Promise<"ok" | "unauthorized" | "refused">
  /** Graph's webhooks taken on this runner for any tenant (a cluster runner; FrontGraph.ts). */
  readonly graph?: GraphIngress | undefined
  /**
   * A cluster runner's PBX sides (PbxSide.ts): a tenant's websocket is served on this runner, whichever runner owns
   * the tenant. Without them a websocket goes to the tenant's connector, here or on its owner's runner.
   */
  readonly pbxSides?: { readonly open: (tenant: TenantId) => Promise<{ readonly port: number; readonly closed: () => void }> } | undefined
  /**
   * Where the tenant's PBX sockets are served (SocketMode.ts): `owner` sends its websockets to its connector as without
   * PBX sides. Without it every tenant's go to the PBX sides.
   */
  readonly socketMode?: ((tenant: TenantId) => Promise<SocketMode>) | undefined
  /** The process's own paths (src/tenants/ProcessRoutes.ts), served on a loopback port: the paths it `owns` go there. */
  readonly processRoutes?: { readonly port: number; readonly owns: (url: string) => boolean } | undefined
}

type Target = { readonly kind: "go"; readonly host: string; readonly port: number; readonly path: string } | {
  readonly kind: "refuse"
  readonly status: number
  readonly reason: string
}

const isTenantId = (text: string): text is TenantId => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(text)

/** The tenant a public URL is for and the path its connector serves it at, if the URL names a known tenant. */
const tenantOf = async (options: FrontOptions, url: string): Promise<{ tenant: TenantId; path: string } | undefined> => {
  const match = /^\/t\/([^/?]+)(\/[^]*|\?[^]*)?$/.exec(url)
  const tenant = match !== null ? match[1]! : options.defaultTenant
  const path = match !== null ? (match[2] ?? "/").replace(/^\?/, "/?") : url
  if (tenant === undefined || !isTenantId(tenant) || !(await options.known(tenant))) return undefined
  return { tenant, path }
}

const resolveTarget = async (options: FrontOptions, url: string, forwarded: boolean): Promise<Target> => {
  const own = options.processRoutes
  if (own?.owns(url) === true) return { kind: "go", host: "127.0.0.1", port: own.port, path: url }
  const found = await tenantOf(options, url)
  if (found === undefined) return { kind: "refuse", status: 404, reason: "no such tenant" }
  const { tenant, path } = found
  const local = options.local(tenant)
  if (local !== undefined) return { kind: "go", host: "127.0.0.1", port: local, path }
  if (forwarded) return { kind: "refuse", status: 503, reason: `tenant ${tenant} is not running on this runner` }
  const owner = await options.owner(tenant)
  const address = owner === undefined || owner === options.runnerId ? undefined : hostPort(owner)
  if (address === undefined) return { kind: "refuse", status: 503, reason: `tenant ${tenant} has no owner at the moment` }
  return { kind: "go", ...address, path: url }
}

/** Whether `url` is one of the front's own paths (`ownRoutes`): checked first, so any other request awaits nothing for it. */
const isOwnRoute = (options: FrontOptions, url: string): boolean =>
  ((url === "/healthz" || url === "/readyz") && options.notReady !== undefined) ||
  (options.statusPath !== null && url === (options.statusPath ?? "/cluster/status"))

/** `/healthz`, `/readyz` and the cluster's status: true when the request was one of them (and is answered). */
const ownRoutes = async (options: FrontOptions, req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
  const url = req.url ?? "/"
  const notReady = options.notReady
  if (url === "/healthz" && notReady !== undefined) return (answer(res, 200, "ok"), true)
  if (url === "/readyz" && notReady !== undefined) {
    const reason = await notReady()
    return (answer(res, reason === undefined ? 200 : 503, reason === undefined ? "ready" : `not ready: ${reason}`), true)
  }
  if (options.statusPath === null || url !== (options.statusPath ?? "/cluster/status")) return false
  const admission = await options.admit(req.headers.authorization, req.socket.remoteAddress ?? "unknown address")
  if (admission === "refused") return (answer(res, 429, "Too many wrong passwords from this address; try again later."), true)
  if (admission === "unauthorized") {
    res.setHeader("www-authenticate", "Basic realm=\"teams-presence-connector\", charset=\"UTF-8\"")
    return (answer(res, 401, "The cluster's status needs the admin password (user name: admin)."), true)
  }
  answer(res, 200, JSON.stringify(await options.status()), "application/json")
  return true
}

/**
 * A request for a server of this process (a tenant's connector here): given to it as it is, with the path the tenant
 * sees and the headers a forwarded request carries, instead of a second HTTP hop over the loopback interface.
 */
const handOver = (options: FrontOptions, server: Server, path: string, req: IncomingMessage, res: ServerResponse) => {
  asForwarded(options, path, req)
  server.emit("request", req, res)
}

/** The path the tenant sees and the headers a forwarded request carries, set on the request itself. */
const asForwarded = (options: FrontOptions, path: string, req: IncomingMessage) => {
  req.url = path
  req.headers[forwardedHeader] = options.runnerId
  req.headers[clientAddressHeader] = relayedAddress(req.socket.remoteAddress)
}

const onRequest = async (options: FrontOptions, req: IncomingMessage, res: ServerResponse) => {
  if (isOwnRoute(options, req.url ?? "/") && (await ownRoutes(options, req, res))) return
  const graph = options.graph
  if (graph !== undefined && req.method === "POST") {
    const found = await tenantOf(options, req.url ?? "/")
    const route = found === undefined ? undefined : await graphRoute(graph, found.tenant, found.path)
    if (found !== undefined && route !== undefined) return graphPost(options, graph, { ...found, ...route }, req, res)
  }
  const target = await resolveTarget(options, req.url ?? "/", req.headers[forwardedHeader] !== undefined)
  if (target.kind === "refuse") return answer(res, target.status, target.reason)
  const here = target.host === "127.0.0.1" ? localServer(target.port) : undefined
  if (here !== undefined) return handOver(options, here, target.path, req, res)
  passOn(options, target, req, res, () => {
    if (!res.headersSent) answer(res, 502, "the tenant's runner cannot be reached")
    else res.destroy()
  })
}

/**
 * Where a websocket goes: this runner's PBX side of the tenant (counted until the socket closes), else — no PBX sides,
 * or a tenant in mode `owner` — as a request: to the tenant's connector here or on its owner's runner.
 */
const upgradeTarget = async (options: FrontOptions, req: IncomingMessage, socket: Duplex): Promise<Target> => {
  const sides = options.pbxSides
  const forwarded = req.headers[forwardedHeader] !== undefined
  if (sides === undefined || forwarded) return resolveTarget(options, req.url ?? "/", forwarded)
  const found = await tenantOf(options, req.url ?? "/")
  if (found === undefined) return { kind: "refuse", status: 404, reason: "no such tenant" }
  if ((await options.socketMode?.(found.tenant)) === "owner") return resolveTarget(options, req.url ?? "/", forwarded)
  try {
    const { port, closed } = await sides.open(found.tenant)
    if (socket.destroyed) closed()
    else socket.once("close", closed)
    return { kind: "go", host: "127.0.0.1", port, path: found.path }
  } catch {
    return { kind: "refuse", status: 503, reason: `the PBX side of tenant ${found.tenant} cannot start on this runner` }
  }
}

/**
 * A websocket (a PBX): to this runner's PBX side of the tenant, or to its connector here or on its owner's runner —
 * handed to the server when it runs in this process (its frames then cross no second socket), else piped.
 */
const onUpgrade = async (options: FrontOptions, track: (socket: Duplex) => void, req: IncomingMessage, socket: Duplex, head: Buffer) => {
  track(socket)
  socket.on("error", () => socket.destroy())
  const target = await upgradeTarget(options, req, socket)
  if (target.kind === "refuse") {
    socket.end(`HTTP/1.1 ${target.status} ${target.reason}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`)
    return
  }
  const here = target.host === "127.0.0.1" ? localServer(target.port) : undefined
  if (here !== undefined) {
    asForwarded(options, target.path, req)
    here.emit("upgrade", req, socket, head)
    return
  }
  const upstream: Socket = connect(target.port, target.host)
  track(upstream)
  upstream.on("error", () => socket.destroy())
  upstream.on("close", () => socket.destroy())
  socket.on("close", () => upstream.destroy())
  upstream.once("connect", () => {
    const headers: Array<string> = []
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i]!.toLowerCase()
      if (name !== forwardedHeader && name !== clientAddressHeader) headers.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`)
    }
    const client = `${clientAddressHeader}: ${relayedAddress(req.socket.remoteAddress)}`
    upstream.write([`${req.method} ${target.path} HTTP/1.1`, ...headers, `${forwardedHeader}: ${options.runnerId}`, client, "", ""].join("\r\n"))
    if (head.length > 0) upstream.write(head)
    socket.pipe(upstream).pipe(socket)
  })
}

export const startRunnerFront = (options: FrontOptions): Effect.Effect<{ readonly port: number }, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<{ port: number; close: () => void }>((resume) => {
      const open = new Set<Duplex>()
      const track = (socket: Duplex) => {
        open.add(socket)
        socket.once("close", () => open.delete(socket))
      }
      const server = createServer({ keepAliveTimeout: options.keepAliveTimeout ?? keepAliveTimeoutMillis }, (req, res) => {
        onRequest(options, req, res).catch(() => answer(res, 500, "internal error"))
      })
      server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        onUpgrade(options, track, req, socket, head).catch(() => socket.destroy())
      })
      listenShared(server, options.host, options.port).then(
        (sockets) =>
          resume(Effect.succeed({
            port: sockets.port,
            close: () => {
              for (const socket of open) socket.destroy()
              server.closeAllConnections()
              sockets.close()
            }
          })),
        (error) => resume(Effect.die(error))
      )
    }),
    (front) => Effect.sync(front.close)
  ).pipe(Effect.tap((front) => logListenBacklog(front.port)), Effect.map((front) => ({ port: front.port })))
