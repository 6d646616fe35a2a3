import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Metric, Redacted } from "effect"
import { HttpServer } from "effect/http"
import { initialSnapshot, StatusBoard, type StatusSnapshot, type UserRow } from "../../src/status/StatusBoard.ts"
import { notificationsReceived } from "../../src/domain/Metrics.ts"
import { serveRoutes } from "../../src/http/Server.ts"
import { AdminPassword, authorized, StatusRoutes } from "../../src/status/StatusRoutes.ts"

const password = "admin-test-password"
const basic = (user: string, pw: string) => "Basic " + Buffer.from(`${user}:${pw}`).toString("base64")

const start = Effect.gen(function*() {
  const board = StatusBoard.layer(initialSnapshot({ version: "9.9.9", startedAt: 0, mode: "push" }))
  const layer = serveRoutes(StatusRoutes, { host: "127.0.0.1", port: 0 }).pipe(
    Layer.provideMerge(board),
    Layer.provide(Layer.succeed(AdminPassword, Redacted.make(password)))
  )
  const context = yield* Layer.build(layer)
  const address = Context.get(context, HttpServer.HttpServer).address
  const port = address._tag === "UnixPathAddress" ? 0 : address.port
  return { base: `http://127.0.0.1:${port}`, board: Context.get(context, StatusBoard) }
})

const green = (s: StatusSnapshot): StatusSnapshot => ({
  ...s,
  lights: {
    masterPbx: { state: "green", reason: "connected" },
    authentication: { state: "green", reason: "signed in" },
    presenceSubscription: { state: "green", reason: "1 shard active" },
    userSubscription: { state: "green", reason: "active" }
  }
})

describe("status routes", () => {
  it("authorized: any user, the admin password, nothing else", () => {
    const secret = Redacted.make(password)
    assert.isTrue(authorized(basic("admin", password), secret))
    assert.isTrue(authorized(basic("someone", password), secret))
    assert.isFalse(authorized(basic("admin", password + "x"), secret))
    assert.isFalse(authorized(undefined, secret))
    assert.isFalse(authorized("Bearer abc", secret))
    assert.isFalse(authorized("Basic !!!", secret))
  })

  it.live("the page and the JSON need the password; probes do not", () =>
    Effect.scoped(Effect.gen(function*() {
      const { base, board } = yield* start
      const get = (path: string, auth?: string) =>
        Effect.promise(() => fetch(base + path, auth ? { headers: { authorization: auth } } : {}))

      const refused = yield* get("/")
      assert.strictEqual(refused.status, 401)
      assert.match(refused.headers.get("www-authenticate") ?? "", /Basic/)
      assert.strictEqual((yield* get("/api/status", basic("admin", "wrong"))).status, 401)

      const page = yield* get("/", basic("admin", password))
      assert.strictEqual(page.status, 200)
      assert.include(yield* Effect.promise(() => page.text()), "Teams presence connector")
      assert.strictEqual((yield* get("/static/app.js", basic("admin", password))).status, 200)

      const status = yield* get("/api/status", basic("admin", password))
      const body = (yield* Effect.promise(() => status.json())) as StatusSnapshot
      assert.strictEqual(body.version, "9.9.9")
      assert.strictEqual(body.lights.masterPbx.state, "red")

      assert.strictEqual((yield* get("/healthz")).status, 200)
      const notReady = yield* get("/readyz")
      assert.strictEqual(notReady.status, 503)
      assert.include(yield* Effect.promise(() => notReady.text()), "masterPbx")

      yield* board.update(green)
      assert.strictEqual((yield* get("/readyz")).status, 200)

      yield* Metric.update(Metric.withAttributes(notificationsReceived, { kind: "presence" }), 3)
      const metrics = yield* Effect.promise(() => fetch(base + "/metrics").then((r) => r.text()))
      assert.match(metrics, /# TYPE connector_notifications_received_total counter/)
      assert.match(metrics, /connector_notifications_received_total\{kind="presence"\} \d+/)
    })))

  it.live("server-sent events deliver the status, and a new frame after a change", () =>
    Effect.scoped(Effect.gen(function*() {
      const { base, board } = yield* start
      const controller = new AbortController()
      yield* Effect.addFinalizer(() => Effect.sync(() => controller.abort()))
      const response = yield* Effect.promise(() =>
        fetch(base + "/api/events", { headers: { authorization: basic("a", password) }, signal: controller.signal })
      )
      assert.strictEqual(response.status, 200)
      assert.match(response.headers.get("content-type") ?? "", /text\/event-stream/)
      const reader = response.body!.getReader()
      const decoder = new TextDecoder()
      let buffer = ""
      // Comment frames (keep-alives) carry no data and are skipped, as browsers do.
      const nextFrame = Effect.promise(async () => {
        for (;;) {
          while (!buffer.includes("\n\n")) {
            const { value, done } = await reader.read()
            if (done) throw new Error("stream ended")
            buffer += decoder.decode(value, { stream: true })
          }
          const end = buffer.indexOf("\n\n")
          const lines = buffer.slice(0, end).split("\n")
          buffer = buffer.slice(end + 2)
          const data = lines.find((l) => l.startsWith("data: "))
          const event = lines.find((l) => l.startsWith("event: "))?.slice(7) ?? "message"
          if (data !== undefined) return { event, data: JSON.parse(data.slice(6)) as any }
        }
      })
      const first = yield* nextFrame
      assert.strictEqual(first.event, "status")
      assert.strictEqual(first.data.lights.authentication.state, "red")
      assert.deepStrictEqual(first.data.users, [])

      // A new row: only that row travels.
      const row: UserRow = {
        teamsId: "t1", name: "Ann", upn: "ann@x.com", pbxGuid: "g1", pbxName: "ann", pbx: "pbx-master", licensed: true,
        availability: "Busy", activity: "InAMeeting", written: "meeting"
      }
      yield* board.update((s) => ({ ...green(s), users: [row] }))
      const second = yield* nextFrame
      assert.strictEqual(second.event, "delta")
      assert.strictEqual(second.data.lights.authentication.state, "green")
      assert.isUndefined(second.data.users)
      assert.deepStrictEqual(second.data.changedUsers, [row])
      assert.deepStrictEqual(second.data.removedUsers, [])

      // Lights change, the row object does not: no row travels. Then the row goes away: its id travels.
      yield* board.update((s) => ({ ...s, lights: { ...s.lights, masterPbx: { state: "red", reason: "gone" } } }))
      const third = yield* nextFrame
      assert.deepStrictEqual([third.data.changedUsers, third.data.removedUsers], [[], []])
      assert.strictEqual(third.data.lights.masterPbx.state, "red")
      yield* board.update((s) => ({ ...s, users: [] }))
      const fourth = yield* nextFrame
      assert.deepStrictEqual(fourth.data.removedUsers, ["t1"])
    })))
})
