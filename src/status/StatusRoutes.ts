/**
 * The administrator's endpoints: the status page and its JSON and live event stream (behind the admin password), and
 * the unauthenticated probes `/healthz`, `/readyz` and `/metrics`. Wrong passwords back off per source address (a
 * growing delay, then 429 for a while; domain/LoginBackoff.ts), summarised in the log per address; the page's answers
 * carry a Content-Security-Policy that allows only its own script, style and feed, and `/api/*` is never cached.
 */
import { createHash, timingSafeEqual } from "node:crypto"
import { readFileSync } from "node:fs"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { Clock, Context, Effect, Metric, Redacted, Stream } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { currentTenantLabel, prometheusText, tenantPrometheusText } from "../observability/MetricsText.ts"
import { noneRed, StatusBoard } from "./StatusBoard.ts"
import { clientAddressOf } from "../http/ClientAddress.ts"
import { type BackoffPolicy, defaultBackoffPolicy, type LoginBackoff, makeLoginBackoff } from "../domain/LoginBackoff.ts"
import { loginFailures } from "../domain/Metrics.ts"
import { lightLine } from "./LightText.ts"
import { StatusPageLimits, statusEvents } from "./StatusEvents.ts"

export { statusEvents } from "./StatusEvents.ts"

export class AdminPassword extends Context.Service<AdminPassword, Redacted.Redacted<string>>()(
  "teams-presence-connector/status/AdminPassword"
) {}

/**
 * The provider's admin password in a process that serves many tenants (docs/tenants.md): it opens every tenant's page
 * besides the tenant's own password. None for a single connector.
 */
export const ProviderPassword = Context.Reference<Redacted.Redacted<string> | undefined>(
  "teams-presence-connector/status/ProviderPassword",
  { defaultValue: () => undefined }
)

export const staticFile = (name: string): string => readFileSync(new URL(`./static/${name}`, import.meta.url), "utf8")

const digest = (value: string): Buffer => createHash("sha256").update(value).digest()

/** Constant-time check of `Authorization: Basic …`; any user name, the admin password. */
export const authorized = (header: string | undefined, password: Redacted.Redacted<string>): boolean => {
  if (header === undefined || !header.toLowerCase().startsWith("basic ")) return false
  const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8")
  const colon = decoded.indexOf(":")
  if (colon < 0) return false
  return timingSafeEqual(digest(decoded.slice(colon + 1)), digest(Redacted.value(password)))
}

/** The status page's own script, style and feed, nothing else: no inline code, no other origin, no framing. */
export const contentSecurityPolicy =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

export const pageHeaders = { "content-security-policy": contentSecurityPolicy }
const apiHeaders = { ...pageHeaders, "cache-control": "no-store" }

const unauthorized = HttpServerResponse.text("The status page needs the admin password (user name: admin).", {
  status: 401,
  headers: { ...apiHeaders, "www-authenticate": "Basic realm=\"teams-presence-connector\", charset=\"UTF-8\"" }
})

export const json = (value: unknown, status = 200) =>
  HttpServerResponse.text(JSON.stringify(value), { status, contentType: "application/json; charset=utf-8", headers: apiHeaders })

/** The backoff for wrong admin passwords (the same policy as PBX logins unless configured otherwise). */
export const StatusLoginBackoff = Context.Reference<BackoffPolicy>("teams-presence-connector/status/StatusLoginBackoff", {
  defaultValue: () => defaultBackoffPolicy
})

const countLogin = (outcome: "failed" | "refused") =>
  Metric.update(Metric.withAttributes(loginFailures, { endpoint: "status", outcome }), 1)

const sourceOf = clientAddressOf

/** The Node response under a request, to bound a live feed's connection; undefined for requests built in memory. */
const nodeResponseOf = (request: HttpServerRequest.HttpServerRequest) => {
  try {
    const response = NodeHttpServerRequest.toServerResponse(request)
    return "setTimeout" in response && typeof response.setTimeout === "function" ? response : undefined
  } catch {
    return undefined
  }
}

/** A source refused for its wrong passwords: 429 with the time left. */
const refusedSource = Effect.fnUntraced(function*(source: string, admission: { readonly failures: number; readonly retryAfterMillis: number }) {
  yield* countLogin("refused")
  const seconds = Math.ceil(admission.retryAfterMillis / 1000)
  yield* Effect.logWarning(`status page: ${source} refused after ${admission.failures} wrong passwords; for another ${seconds} s`).pipe(
    Effect.annotateLogs({ logKey: `status-login-blocked:${source}` })
  )
  return HttpServerResponse.text("Too many wrong passwords from this address; try again later.", {
    status: 429,
    headers: { ...apiHeaders, "retry-after": String(seconds) }
  })
})

/** A wrong password: counted, logged (per source, rate-limited), answered 401 after the backoff's delay. */
const wrongPassword = Effect.fnUntraced(function*(backoff: LoginBackoff, source: string, now: number) {
  const failure = backoff.fail(source, now)
  yield* countLogin("failed")
  yield* Effect.logWarning(`status page: wrong admin password from ${source}`).pipe(Effect.annotateLogs({ logKey: `status-login:${source}` }))
  if (failure.refusedNow) {
    yield* Effect.logWarning(
      `status page: ${source} is refused for ${Math.round(backoff.policy.refuseMillis / 60_000)} min after ${failure.failures} wrong passwords`
    ).pipe(Effect.annotateLogs({ logKey: `status-login-blocked:${source}` }))
  }
  yield* Effect.sleep(failure.delayMillis)
  return unauthorized
})

/** Whether the header carries one of the passwords (each compared in constant time). */
const authorizedByAny = (header: string, passwords: ReadonlyArray<Redacted.Redacted<string>>): boolean =>
  passwords.map((password) => authorized(header, password)).includes(true)

/**
 * Wraps a handler so that it answers only with one of the passwords (the admin password; on a tenant's page of a
 * process with many tenants, the tenant's own or the provider's); wrong passwords back off per source.
 */
export const makeGuard = (backoff: LoginBackoff, passwords: ReadonlyArray<Redacted.Redacted<string>>) =>
<E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Effect.gen(function*() {
      const source = sourceOf(request)
      const now = yield* Clock.currentTimeMillis
      const admission = backoff.admit(source, now)
      if (admission._tag === "Refuse") return yield* refusedSource(source, admission)
      const header = request.headers["authorization"]
      // A browser asks without credentials first: that is no failed login.
      if (header === undefined) return unauthorized
      if (!authorizedByAny(header, passwords)) return yield* wrongPassword(backoff, source, now)
      backoff.succeed(source)
      return yield* handler
    }))

/** `/api/events`: the live feed, at most `maxEventStreams` at once; a reader that stalls is cut off. */
const makeEventStreams = (board: StatusBoard["Service"], limits: StatusPageLimits) => {
  let open = 0
  return Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Effect.sync(() => {
      if (open >= limits.maxEventStreams) {
        return HttpServerResponse.text(`At most ${limits.maxEventStreams} status pages can follow live at once; close one.`, {
          status: 503,
          headers: { ...apiHeaders, "retry-after": "30" }
        })
      }
      open++
      // A reader that takes nothing for this long (its socket idle: not even the keep-alive leaves) is cut off.
      const response = nodeResponseOf(request)
      response?.setTimeout(limits.eventStreamStallMillis, () => response.destroy())
      return HttpServerResponse.stream(statusEvents(board, limits).pipe(Stream.ensuring(Effect.sync(() => void open--))), {
        contentType: "text/event-stream",
        headers: { ...apiHeaders, "x-accel-buffering": "no" }
      })
    }))
}

/** `/readyz`: ready while no light is red; else 503 with the red lights' reasons. */
const readiness = (board: StatusBoard["Service"]) =>
  Effect.map(board.get, (snapshot) =>
    noneRed(snapshot)
      ? HttpServerResponse.text("ready")
      : HttpServerResponse.text(
        Object.entries(snapshot.lights).filter(([, l]) => l.state === "red").map(([name, l]) => `${name}: ${lightLine(l)}`).join("\n"),
        { status: 503 }
      ))

export { prometheusText } from "../observability/MetricsText.ts"

const pages: ReadonlyArray<readonly [path: string, file: string, type: string]> = [
  ["/", "index.html", "text/html; charset=utf-8"],
  ["/static/format.js", "format.js", "text/javascript; charset=utf-8"],
  ["/static/app.js", "app.js", "text/javascript; charset=utf-8"],
  ["/static/favicon.svg", "favicon.svg", "image/svg+xml"],
  ["/static/style.css", "style.css", "text/css; charset=utf-8"]
]

export const prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

export const StatusRoutes = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const board = yield* StatusBoard
  const provider = yield* ProviderPassword
  const guarded = makeGuard(makeLoginBackoff(yield* StatusLoginBackoff), [yield* AdminPassword, ...(provider === undefined ? [] : [provider])])
  for (const [path, file, type] of pages) {
    const page = HttpServerResponse.text(staticFile(file), { contentType: type, headers: { ...pageHeaders, "cache-control": "no-cache" } })
    yield* router.add("GET", path as HttpRouter.PathInput, guarded(Effect.succeed(page)))
  }
  yield* router.add("GET", "/api/status", guarded(Effect.map(board.get, (snapshot) => json(snapshot))))
  yield* router.add("GET", "/api/events", guarded(makeEventStreams(board, yield* StatusPageLimits)))
  yield* router.add("GET", "/healthz", Effect.succeed(HttpServerResponse.text("ok")))
  yield* router.add("GET", "/readyz", readiness(board))
  // A stored tenant's connector shows its own series; tenant default's (a single connector, an embedding
  // application, a cluster runner's default) the whole process's, as /metrics always did (docs/tenants.md, Metrics).
  const tenant = yield* currentTenantLabel
  yield* router.add(
    "GET",
    "/metrics",
    Effect.map(tenant === undefined || tenant === "default" ? prometheusText : tenantPrometheusText(tenant), (text) =>
      HttpServerResponse.text(text, { contentType: prometheusContentType }))
  )
}))
