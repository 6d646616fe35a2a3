/**
 * The process's own paths on the public port of `run` (docs/tenants.md): the whole `/metrics` (every tenant's series,
 * each with its `tenant` label), and behind the provider's admin password the tenants' overview — the page
 * `/tenants/` and its JSON `/api/tenants/status` — and the tenants API `/api/tenants…` (TenantsApi.ts). They are served by an HTTP server of their own on a loopback port,
 * as a tenant's connector is; the public front (src/cluster/RunnerFront.ts) sends the paths `owns` accepts there.
 * Wrong passwords back off per client address with the status page's own guard and policy (`security`).
 */
import { Context, Effect, Layer, type Redacted } from "effect"
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { serveRoutes } from "../http/Server.ts"
import { type BackoffPolicy, makeLoginBackoff } from "../domain/LoginBackoff.ts"
import { prometheusText } from "../observability/MetricsText.ts"
import { json, makeGuard, pageHeaders, prometheusContentType, staticFile } from "../status/StatusRoutes.ts"
import { TenantServerError } from "./TenantRuntime.ts"
import type { TenantsOverview } from "./TenantsOverview.ts"
import { tenantsApiRoutes } from "./TenantsApi.ts"
import type { StateStore } from "../state/StateStore.ts"

/** The paths of the public port that are the process's, not tenant `default`'s. */
export const processOwns = (url: string): boolean => /^\/(metrics|tenants|api\/tenants)(\/|\?|$)/.test(url)

export interface ProcessRoutesOptions {
  /** The provider's admin password (the configuration file's status password). */
  readonly adminPassword: Redacted.Redacted<string>
  readonly loginBackoff: BackoffPolicy
  readonly overview: Effect.Effect<TenantsOverview>
  /** The store the tenants API manages (the process's). */
  readonly store: StateStore["Service"]
}

const pages: ReadonlyArray<readonly [path: string, file: string, type: string]> = [
  // The router takes /tenants and /tenants/ as one path: the page names its files absolutely.
  ["/tenants/", "overview.html", "text/html; charset=utf-8"],
  ["/tenants/static/overview.js", "overview.js", "text/javascript; charset=utf-8"],
  ["/tenants/static/format.js", "format.js", "text/javascript; charset=utf-8"],
  ["/tenants/static/style.css", "style.css", "text/css; charset=utf-8"],
  ["/tenants/static/favicon.svg", "favicon.svg", "image/svg+xml"]
]

const routes = (options: ProcessRoutesOptions) => {
  // One table of wrong passwords per address for the overview and the API.
  const guarded = makeGuard(makeLoginBackoff(options.loginBackoff), [options.adminPassword])
  const overview = HttpRouter.use(Effect.fnUntraced(function*(router) {
    yield* router.add("GET", "/metrics", Effect.map(prometheusText, (text) => HttpServerResponse.text(text, { contentType: prometheusContentType })))
    for (const [path, file, type] of pages) {
      const page = HttpServerResponse.text(staticFile(file), { contentType: type, headers: { ...pageHeaders, "cache-control": "no-cache" } })
      yield* router.add("GET", path as HttpRouter.PathInput, guarded(Effect.succeed(page)))
    }
    const status = guarded(Effect.map(options.overview, (overview) => json(overview)))
    yield* router.add("GET", "/tenants/status", status)
    yield* router.add("GET", "/api/tenants/status", status)
  }))
  return Layer.merge(overview, tenantsApiRoutes(options.store, guarded))
}

/** Serves the process's paths on a loopback port in the current scope; its port for the front. */
export const serveProcessRoutes = Effect.fn("ProcessRoutes.serve")(function*(options: ProcessRoutesOptions) {
  const context = yield* Layer.build(serveRoutes(routes(options), { host: "127.0.0.1", port: 0 }))
  const address = Context.get(context, HttpServer.HttpServer).address
  if (!("port" in address)) return yield* new TenantServerError({ message: "the process's own routes have no TCP port" })
  return { port: address.port, owns: processOwns }
})
