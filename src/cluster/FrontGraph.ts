/**
 * Graph's webhooks on a runner's public port (docs/scaling.md, "Graph notifications on any runner"). A POST to a
 * tenant's notification or lifecycle path never waits long for the tenant's owner: the validation handshake is
 * answered here; a notification goes straight to the tenant's connector when it runs here (to its handler in this
 * process when it has one: FrontHttp.ts `handBody`, no loopback request) and has taken what was
 * handed over to it, else to the owner's runner when another live runner owns the tenant (once: that runner takes it
 * as its own, straight to the connector or through the store), else — and whenever the connector or the owner's
 * runner does not answer within 1 s, answers 5xx or cannot be reached (it is stopping or dead) — it is checked and
 * handed to the owner through the store (HandoffIntake.ts), answered 202 once stored.
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import { performance } from "node:perf_hooks"
import type { TenantId } from "../state/StateStore.ts"
import type { HandoffKind } from "./GraphHandoff.ts"
import type { HandoffAnswer } from "./HandoffIntake.ts"
import { localServer, nodeHandlerOf } from "../http/Server.ts"
import { answer, forwardedHeader, handBody, hostPort, passOn } from "./FrontHttp.ts"

export interface GraphPaths {
  readonly notificationPath: string
  readonly lifecyclePath: string
  readonly maxBodyBytes: number
}

export interface GraphIngress {
  /** The tenant's webhook paths (its configuration), or undefined when it takes no notifications (poll mode). */
  readonly paths: (tenant: TenantId) => Promise<GraphPaths | undefined>
  /** The loopback port of the tenant's connector when notifications go straight to it here. */
  readonly direct: (tenant: TenantId) => number | undefined
  readonly receive: (tenant: TenantId, kind: HandoffKind, json: unknown) => Promise<HandoffAnswer>
  /**
   * The runner id (public `host:port`) of the tenant's owner when it is another runner, up, and worth trying: a POST
   * not served here goes there first instead of through the store. Undefined: hand it over through the store.
   */
  readonly owner?: (tenant: TenantId) => string | undefined
  /** A POST passed to `runner` found no answer there (refused, 5xx, none within 1 s): it was handed over instead. */
  readonly ownerFailed?: (runner: string) => void
  /** A POST answered: from its arrival here to its answer finished, straight to the connector, forwarded or handed over. */
  readonly timed?: (path: GraphPostPath, millis: number) => void
  /** Logs and counts a body refused before it could be handed over (too large, not JSON). */
  readonly refused: (tenant: TenantId, reason: "too_large" | "malformed", message: string) => void
}

/** How a POST was answered: by the connector here, by the owner's runner, or handed over through the store. */
export type GraphPostPath = "post_direct" | "post_forward" | "post_handoff"

export interface GraphRoute {
  readonly tenant: TenantId
  /** The path (and query) as the tenant's connector serves it. */
  readonly path: string
  readonly kind: HandoffKind
  readonly maxBodyBytes: number
}

/** Whether `path` (the tenant's part of the URL) is one of the tenant's webhooks. */
export const graphRoute = async (graph: GraphIngress, tenant: TenantId, path: string) => {
  const paths = await graph.paths(tenant)
  if (paths === undefined) return undefined
  const pathname = path.split("?")[0]
  const kind: HandoffKind | undefined = pathname === paths.notificationPath ? "change" : pathname === paths.lifecyclePath ? "lifecycle" : undefined
  return kind === undefined ? undefined : { kind, maxBodyBytes: paths.maxBodyBytes }
}

/** The body, or undefined when it is larger than `limit` (the rest is read and thrown away). */
const readBody = (req: IncomingMessage, limit: number) =>
  new Promise<Buffer | undefined>((resolve, reject) => {
    const chunks: Array<Buffer> = []
    let size = 0
    req.on("data", (chunk: Buffer) => {
      size += chunk.length
      if (size <= limit) chunks.push(chunk)
    })
    req.once("end", () => resolve(size <= limit ? Buffer.concat(chunks) : undefined))
    req.once("error", reject)
  })

export const graphPost = async (options: { readonly runnerId: string }, graph: GraphIngress, route: GraphRoute, req: IncomingMessage, res: ServerResponse) => {
  const query = route.path.indexOf("?")
  const token = query < 0 ? null : new URLSearchParams(route.path.slice(query + 1)).get("validationToken")
  // Graph's validation handshake: the decoded token back as text/plain, which any runner can do.
  if (token !== null) return answer(res, 200, token)
  const arrived = performance.now()
  // The URL as received: a POST passed to the owner's runner is for that runner's front.
  const publicUrl = req.url ?? "/"
  let path: GraphPostPath = "post_direct"
  res.once("finish", () => graph.timed?.(path, performance.now() - arrived))
  const declared = Number(req.headers["content-length"] ?? "0")
  const body = Number.isFinite(declared) && declared > route.maxBodyBytes ? undefined : await readBody(req, route.maxBodyBytes)
  if (body === undefined) {
    graph.refused(route.tenant, "too_large", `body exceeds the limit of ${route.maxBodyBytes} bytes`)
    return answer(res, 400, "body too large")
  }
  const handOver = async () => {
    path = "post_handoff"
    let json: unknown
    try {
      json = JSON.parse(body.toString("utf8"))
    } catch {
      graph.refused(route.tenant, "malformed", "body is not JSON")
      return answer(res, 400, "malformed JSON")
    }
    const answered = await graph.receive(route.tenant, route.kind, json)
    answer(res, answered.status, answered.text)
  }
  const fallBack = () => {
    if (res.headersSent) return res.destroy()
    handOver().catch(() => answer(res, 500, "internal error"))
  }
  const port = graph.direct(route.tenant)
  if (port !== undefined) {
    // The connector's server is in this process: its handler takes the body read here, without a loopback request.
    const server = localServer(port)
    const handler = server === undefined ? undefined : nodeHandlerOf(server, "POST", route.path)
    if (handler !== undefined) return handBody(options, handler, route.path, req, res, fallBack, body)
    return passOn(options, { host: "127.0.0.1", port, path: route.path }, req, res, fallBack, body)
  }
  // Passed on once: the owner's runner takes a forwarded POST as its own and never passes it on again.
  const owner = req.headers[forwardedHeader] === undefined ? graph.owner?.(route.tenant) : undefined
  const address = owner === undefined ? undefined : hostPort(owner)
  if (owner === undefined || address === undefined) return handOver()
  path = "post_forward"
  passOn(options, { ...address, path: publicUrl }, req, res, () => {
    graph.ownerFailed?.(owner)
    fallBack()
  }, body)
}
