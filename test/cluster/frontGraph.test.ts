/**
 * Graph's webhooks on a runner's public port (src/cluster/FrontGraph.ts) over real sockets: the validation handshake
 * answered by the runner itself, a body over the tenant's limit refused and logged, a notification for a tenant not
 * served here handed over, one for a tenant served here passed to its connector — and handed over instead when that
 * connector does not begin to answer within 1 s or answers 5xx (it is stopping) — given to the connector's handler in the
 * process when its server is one of this process's; one for a tenant another live runner
 * owns passed to that runner's front (once), and handed over here when that runner is dead, dies during the POST, is
 * silent or answers 5xx.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { createServer, type Server } from "node:http"
import { createServer as createTcpServer } from "node:net"
import type { GraphIngress } from "../../src/cluster/FrontGraph.ts"
import { startRunnerFront } from "../../src/cluster/RunnerFront.ts"
import { localServer, serveRoutes, takeRequests } from "../../src/http/Server.ts"
import { TenantId } from "../../src/state/StateStore.ts"

const alpha = TenantId.make("alpha")

/** A tenant's connector on a loopback port: answers `status`, or never answers (a connector that is stopping). */
const connector = (status: number | "never") =>
  Effect.acquireRelease(
    Effect.callback<{ server: Server; port: number; posts: Array<string> }>((resume) => {
      const posts: Array<string> = []
      const server = createServer((req, res) => {
        let body = ""
        req.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")))
        req.on("end", () => {
          posts.push(body)
          if (status !== "never") res.writeHead(status).end()
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(Effect.succeed({ server, port: typeof address === "object" && address !== null ? address.port : 0, posts }))
      })
    }),
    ({ server }) => Effect.sync(() => server.closeAllConnections()).pipe(Effect.andThen(Effect.sync(() => server.close())))
  )

const setup = (direct: number | undefined, owner?: string, handoffStatus = 202) =>
  Effect.gen(function*() {
    const received: Array<unknown> = []
    const refused: Array<string> = []
    const failed: Array<string> = []
    const graph: GraphIngress = {
      paths: async () => ({ notificationPath: "/graph/notifications", lifecyclePath: "/graph/lifecycle", maxBodyBytes: 200 }),
      direct: () => direct,
      owner: () => owner,
      ownerFailed: (runner) => void failed.push(runner),
      receive: async (_tenant, kind, json) => {
        received.push({ kind, json })
        return { status: handoffStatus, text: "" }
      },
      refused: (_tenant, reason) => void refused.push(reason)
    }
    const front = yield* startRunnerFront({
      host: "127.0.0.1",
      port: 0,
      runnerId: "127.0.0.1:1",
      defaultTenant: undefined,
      local: () => direct,
      known: async (tenant) => tenant === alpha,
      owner: async () => undefined,
      notReady: async () => undefined,
      status: async () => ({}),
      admit: async () => "unauthorized",
      graph
    })
    const post = (path: string, body: string) =>
      Effect.promise(async () => {
        const response = await fetch(`http://127.0.0.1:${front.port}${path}`, { method: "POST", body, headers: { "content-type": "application/json" } })
        return { status: response.status, text: await response.text(), type: response.headers.get("content-type") }
      })
    return { post, received, refused, failed, runner: `127.0.0.1:${front.port}` }
  })

/** A runner's address where a POST finds no answer: `refused` (nothing listens), `reset` (dies during the POST). */
const deadRunner = (how: "refused" | "reset") =>
  Effect.acquireRelease(
    Effect.callback<{ runner: string; close: () => void }>((resume) => {
      const server = createTcpServer((socket) => {
        socket.once("data", () => socket.resetAndDestroy())
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        if (how === "refused") server.close(() => resume(Effect.succeed({ runner: `127.0.0.1:${port}`, close: () => {} })))
        else resume(Effect.succeed({ runner: `127.0.0.1:${port}`, close: () => void server.close() }))
      })
    }),
    ({ close }) => Effect.sync(close)
  )

const notification = JSON.stringify({ value: [{ subscriptionId: "s1", clientState: "c1", changeType: "updated" }] })

describe("cluster: Graph's webhooks on a runner's public port", () => {
  it.live("the handshake is answered here; a body over the limit is refused and logged; a tenant not served here is handed over", () =>
    Effect.scoped(Effect.gen(function*() {
      const { post, received, refused } = yield* setup(undefined)
      const token = "Validation: Testing client application reachability for subscription Request-Id: 1"
      const handshake = yield* post(`/t/alpha/graph/notifications?validationToken=${encodeURIComponent(token)}`, "")
      assert.strictEqual(handshake.status, 200)
      assert.strictEqual(handshake.text, token)
      assert.match(handshake.type ?? "", /^text\/plain/)
      const large = yield* post("/t/alpha/graph/notifications", JSON.stringify({ value: [], padding: "x".repeat(300) }))
      assert.strictEqual(large.status, 400)
      assert.strictEqual((yield* post("/t/alpha/graph/lifecycle", "{not json")).status, 400)
      assert.deepStrictEqual(refused, ["too_large", "malformed"])
      assert.strictEqual((yield* post("/t/alpha/graph/notifications", notification)).status, 202)
      assert.strictEqual((yield* post("/t/alpha/graph/lifecycle", "{\"value\":[]}")).status, 202)
      assert.deepStrictEqual(received.map((r) => (r as { kind: string }).kind), ["change", "lifecycle"])
      // Not a webhook path of the tenant, and not served here: not taken as a notification.
      assert.strictEqual((yield* post("/t/alpha/other", notification)).status, 503)
      assert.strictEqual(received.length, 2)
    })))

  it.live("served here: passed to the connector; handed over when it answers 5xx or not within 1 s", () =>
    Effect.scoped(Effect.gen(function*() {
      const answering = yield* connector(202)
      const direct = yield* setup(answering.port)
      assert.strictEqual((yield* direct.post("/t/alpha/graph/notifications", notification)).status, 202)
      assert.deepStrictEqual(answering.posts, [notification])
      assert.strictEqual(direct.received.length, 0)

      const stopping = yield* connector(503)
      const refusing = yield* setup(stopping.port)
      assert.strictEqual((yield* refusing.post("/t/alpha/graph/notifications", notification)).status, 202)
      assert.strictEqual(refusing.received.length, 1)

      const silent = yield* connector("never")
      const stalled = yield* setup(silent.port)
      const answer = yield* stalled.post("/t/alpha/graph/notifications", notification)
      assert.strictEqual(answer.status, 202)
      assert.deepStrictEqual(stalled.received, [{ kind: "change", json: JSON.parse(notification) }])
      assert.deepStrictEqual(silent.posts, [notification])
    })))

  it.live("served here by a server of this process: its handler takes the body read already, no loopback request; 5xx or silence: handed over", () =>
    Effect.scoped(Effect.gen(function*() {
      /** A connector's server in this process whose notification POSTs its Node-level handler takes (WebhookNode.ts). */
      const inProcess = (status: number | "never") =>
        Effect.gen(function*() {
          const context = yield* Layer.build(serveRoutes(HttpRouter.add("*", "/graph/notifications", HttpServerResponse.text("route")), { host: "127.0.0.1", port: 0 }))
          const address = Context.get(context, HttpServer.HttpServer).address
          const port = "port" in address ? address.port : 0
          const taken: Array<{ body: string; forwarded: string | undefined; socketPort: number | undefined }> = []
          const connections: Array<number> = []
          localServer(port)!.on("connection", () => void connections.push(port))
          takeRequests(port, "POST", "/graph/notifications", (req, res) => {
            let body = ""
            req.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")))
            req.on("end", () => {
              taken.push({ body, forwarded: req.headers["x-connector-forwarded"] as string | undefined, socketPort: req.socket.localPort })
              if (status !== "never") res.writeHead(status, { "x-content-type-options": "nosniff" }).end()
            })
          })
          return { port, taken, connections }
        })
      const answering = yield* inProcess(202)
      const direct = yield* setup(answering.port)
      const answered = yield* direct.post("/t/alpha/graph/notifications", notification)
      assert.strictEqual(answered.status, 202)
      assert.strictEqual(answering.taken.length, 1)
      assert.strictEqual(answering.taken[0]!.body, notification)
      assert.strictEqual(answering.taken[0]!.forwarded, "127.0.0.1:1", "with the headers a forwarded request carries")
      assert.strictEqual(answering.taken[0]!.socketPort, Number(direct.runner.split(":")[1]), "on the client's socket at the front")
      assert.deepStrictEqual(answering.connections, [], "no request to the connector's port")
      assert.strictEqual(direct.received.length, 0)

      for (const status of [503, "never"] as const) {
        const failing = yield* inProcess(status)
        const front = yield* setup(failing.port)
        assert.strictEqual((yield* front.post("/t/alpha/graph/notifications", notification)).status, 202, String(status))
        assert.strictEqual(failing.taken.length, 1, String(status))
        assert.deepStrictEqual(front.received, [{ kind: "change", json: JSON.parse(notification) }], `handed over: ${status}`)
      }
    })))

  it.live("owned by another live runner: passed to its front once, straight to its connector or handed over there", () =>
    Effect.scoped(Effect.gen(function*() {
      const answering = yield* connector(202)
      const owner = yield* setup(answering.port)
      const here = yield* setup(undefined, owner.runner)
      assert.strictEqual((yield* here.post("/t/alpha/graph/notifications", notification)).status, 202)
      // At the owner's connector, and nothing through the store on either runner.
      assert.deepStrictEqual(answering.posts, [notification])
      assert.strictEqual(here.received.length, 0)
      assert.strictEqual(owner.received.length, 0)
      assert.deepStrictEqual(here.failed, [])

      // The owner's runner whose connector does not take it (not started yet) hands it over itself, and never passes
      // a forwarded POST on again, even when it sees another runner as the owner.
      const back = yield* setup(undefined)
      const starting = yield* setup(undefined, back.runner)
      const first = yield* setup(undefined, starting.runner)
      assert.strictEqual((yield* first.post("/t/alpha/graph/notifications", notification)).status, 202)
      assert.deepStrictEqual(starting.received, [{ kind: "change", json: JSON.parse(notification) }])
      assert.strictEqual(first.received.length, 0)
      assert.strictEqual(back.received.length, 0)
    })))

  it.live("the owner's runner dead, killed during the POST, silent or answering 5xx: handed over here", () =>
    Effect.scoped(Effect.gen(function*() {
      const expected = [{ kind: "change", json: JSON.parse(notification) }]
      for (const how of ["refused", "reset"] as const) {
        const dead = yield* deadRunner(how)
        const here = yield* setup(undefined, dead.runner)
        assert.strictEqual((yield* here.post("/t/alpha/graph/notifications", notification)).status, 202, how)
        assert.deepStrictEqual(here.received, expected, how)
        assert.deepStrictEqual(here.failed, [dead.runner], how)
      }
      const silent = yield* connector("never")
      const frozen = yield* setup(silent.port)
      const past = yield* setup(undefined, frozen.runner)
      assert.strictEqual((yield* past.post("/t/alpha/graph/notifications", notification)).status, 202)
      assert.deepStrictEqual(past.received, expected)
      assert.deepStrictEqual(past.failed, [frozen.runner])

      // 5xx from the owner's runner (its store refused the handover at once).
      const refusing = yield* setup(undefined, undefined, 503)
      const via = yield* setup(undefined, refusing.runner)
      assert.strictEqual((yield* via.post("/t/alpha/graph/notifications", notification)).status, 202)
      assert.strictEqual(refusing.received.length, 1)
      assert.deepStrictEqual(via.received, expected)
      assert.deepStrictEqual(via.failed, [refusing.runner])
    })))
})
