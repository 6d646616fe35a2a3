/**
 * The administrator's endpoints: the status page and its JSON and live event stream (behind the admin password), and
 * the unauthenticated probes `/healthz`, `/readyz` and `/metrics`.
 */
import { timingSafeEqual, createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { Context, Effect, Metric, Redacted, Stream } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { allGreen, StatusBoard, type StatusSnapshot, type UserRow } from "../connector/StatusBoard.ts"
import { renderPrometheus } from "./Prometheus.ts"

export class AdminPassword extends Context.Service<AdminPassword, Redacted.Redacted<string>>()(
  "teams-presence-connector/http/AdminPassword"
) {}

const staticFile = (name: string): string => readFileSync(new URL(`./static/${name}`, import.meta.url), "utf8")

const digest = (value: string): Buffer => createHash("sha256").update(value).digest()

/** Constant-time check of `Authorization: Basic …`; any user name, the admin password. */
export const authorized = (header: string | undefined, password: Redacted.Redacted<string>): boolean => {
  if (header === undefined || !header.toLowerCase().startsWith("basic ")) return false
  const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8")
  const colon = decoded.indexOf(":")
  if (colon < 0) return false
  return timingSafeEqual(digest(decoded.slice(colon + 1)), digest(Redacted.value(password)))
}

const unauthorized = HttpServerResponse.text("The status page needs the admin password (user name: admin).", {
  status: 401,
  headers: { "www-authenticate": "Basic realm=\"teams-presence-connector\", charset=\"UTF-8\"" }
})

const json = (value: unknown, status = 200) =>
  HttpServerResponse.text(JSON.stringify(value), { status, contentType: "application/json; charset=utf-8", headers: { "cache-control": "no-store" } })

const sseFrame = (event: string, data: unknown): string => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`

/**
 * The live feed of the status page. The first frame is the whole snapshot (`status`); after that a `delta` frame carries
 * everything but the user table, plus only the user rows that changed (rows are rebuilt only when their inputs change,
 * so an unchanged row is the same object) and the ids of rows that went away — with thousands of users the page stays
 * light. The board is sampled twice a second; a comment every 15 s keeps proxies from closing the stream.
 */
export const statusEvents = (board: StatusBoard["Service"]) => {
  let last: StatusSnapshot | undefined
  let rows: Map<string, UserRow> | undefined
  const frames = Stream.tick("500 millis").pipe(
    Stream.mapEffect(() => board.get),
    Stream.filter((snapshot) => {
      if (snapshot === last) return false
      last = snapshot
      return true
    }),
    Stream.map((snapshot) => {
      const previous = rows
      rows = new Map(snapshot.users.map((row) => [row.teamsId, row]))
      if (previous === undefined) return sseFrame("status", snapshot)
      const current = rows
      const { users: _, ...rest } = snapshot
      return sseFrame("delta", {
        ...rest,
        changedUsers: snapshot.users.filter((row) => previous.get(row.teamsId) !== row),
        removedUsers: [...previous.keys()].filter((id) => !current.has(id))
      })
    })
  )
  const heartbeat = Stream.tick("15 seconds").pipe(Stream.drop(1), Stream.map(() => ": keep-alive\n\n"))
  return Stream.merge(frames, heartbeat).pipe(Stream.encodeText)
}

export const StatusRoutes = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const board = yield* StatusBoard
  const password = yield* AdminPassword
  const pages: Record<string, { body: string; type: string }> = {
    "/": { body: staticFile("index.html"), type: "text/html; charset=utf-8" },
    "/static/app.js": { body: staticFile("app.js"), type: "text/javascript; charset=utf-8" },
    "/static/style.css": { body: staticFile("style.css"), type: "text/css; charset=utf-8" }
  }

  const guarded = <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
      authorized(request.headers["authorization"], password) ? handler : Effect.succeed(unauthorized))

  for (const [path, page] of Object.entries(pages)) {
    yield* router.add(
      "GET",
      path as HttpRouter.PathInput,
      guarded(Effect.succeed(HttpServerResponse.text(page.body, { contentType: page.type, headers: { "cache-control": "no-cache" } })))
    )
  }
  yield* router.add("GET", "/api/status", guarded(Effect.map(board.get, (snapshot) => json(snapshot))))
  yield* router.add(
    "GET",
    "/api/events",
    guarded(Effect.succeed(
      HttpServerResponse.stream(statusEvents(board), {
        contentType: "text/event-stream",
        headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
      })
    ))
  )
  yield* router.add("GET", "/healthz", Effect.succeed(HttpServerResponse.text("ok")))
  yield* router.add(
    "GET",
    "/readyz",
    Effect.map(board.get, (snapshot) =>
      allGreen(snapshot)
        ? HttpServerResponse.text("ready")
        : HttpServerResponse.text(
          Object.entries(snapshot.lights).filter(([, l]) => l.state === "red").map(([name, l]) => `${name}: ${l.reason}`).join("\n"),
          { status: 503 }
        ))
  )
  yield* router.add(
    "GET",
    "/metrics",
    Effect.map(Metric.snapshot, (snapshots) =>
      HttpServerResponse.text(renderPrometheus(snapshots), { contentType: "text/plain; version=0.0.4; charset=utf-8" }))
  )
}))
