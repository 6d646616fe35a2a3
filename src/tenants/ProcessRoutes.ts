/**
 * The process's own paths on the public port of `run` (docs/tenants.md): the whole `/metrics` (every tenant's series,
 * each with its `tenant` label). They are served by an HTTP server of their own on a loopback port, as a tenant's
 * connector is, and the public front (src/cluster/RunnerFront.ts) sends the paths `owns` accepts there.
 */
import { Context, Effect, Layer } from "effect"
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { serveRoutes } from "../http/Server.ts"
import { prometheusText } from "../observability/MetricsText.ts"
import { prometheusContentType } from "../status/StatusRoutes.ts"
import { TenantServerError } from "./TenantRuntime.ts"

/** The paths of the public port that are the process's, not tenant `default`'s. */
export const processOwns = (url: string): boolean => /^\/metrics(\?|$)/.test(url)

const MetricsRoute = HttpRouter.add(
  "GET",
  "/metrics",
  Effect.map(prometheusText, (text) => HttpServerResponse.text(text, { contentType: prometheusContentType }))
)

/** Serves the process's paths on a loopback port in the current scope; its port for the front. */
export const serveProcessRoutes = Effect.fn("ProcessRoutes.serve")(function*() {
  const context = yield* Layer.build(serveRoutes(MetricsRoute, { host: "127.0.0.1", port: 0 }))
  const address = Context.get(context, HttpServer.HttpServer).address
  if (!("port" in address)) return yield* new TenantServerError({ message: "the process's own routes have no TCP port" })
  return { port: address.port, owns: processOwns }
})
