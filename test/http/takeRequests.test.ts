import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { createServer, request } from "node:http"
import { localServer, serveRoutes, takeRequests } from "../../src/http/Server.ts"

/** A request to the server on `port`: its status and body. */
const send = (port: number, method: string, path: string) =>
  Effect.callback<{ status: number; text: string }>((resume) => {
    const req = request({ host: "127.0.0.1", port, method, path }, (res) => {
      let text = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (text += chunk))
      res.on("end", () => resume(Effect.succeed({ status: res.statusCode ?? 0, text })))
    })
    req.end(method === "POST" ? "{}" : undefined)
  })

/** The server's routes answer `route` at /hook for any method. */
const routes = HttpRouter.add("*", "/hook", HttpServerResponse.text("route"))

describe("requests taken before effect's HTTP server (src/http/Server.ts takeRequests)", () => {
  it.live("takes exactly its method and path, on the server's socket and when handed over in the process; removed, the routes serve again", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(serveRoutes(routes, { host: "127.0.0.1", port: 0 }))
      const address = Context.get(context, HttpServer.HttpServer).address
      const port = "port" in address ? address.port : 0
      let taken = 0
      const remove = takeRequests(port, "POST", "/hook", (req, res) => {
        taken++
        req.resume()
        req.on("end", () => res.writeHead(202).end("node"))
      })
      assert.isDefined(remove)
      assert.deepStrictEqual(yield* send(port, "POST", "/hook"), { status: 202, text: "node" })
      // Another method, a query string (the validation handshake) or another path: the routes.
      assert.deepStrictEqual(yield* send(port, "GET", "/hook"), { status: 200, text: "route" })
      assert.deepStrictEqual(yield* send(port, "POST", "/hook?validationToken=x"), { status: 200, text: "route" })
      assert.strictEqual((yield* send(port, "POST", "/other")).status, 404)
      assert.strictEqual(taken, 1)
      // The front (src/cluster/RunnerFront.ts) hands a request over by emitting it on the server of this process.
      const server = localServer(port)
      assert.isDefined(server)
      const front = createServer((req, res) => void server!.emit("request", req, res))
      yield* Effect.acquireRelease(
        Effect.callback<void>((resume) => void front.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.callback<void>((resume) => void front.close(() => resume(Effect.void)))
      )
      const frontAddress = front.address()
      const frontPort = typeof frontAddress === "object" && frontAddress !== null ? frontAddress.port : 0
      assert.deepStrictEqual(yield* send(frontPort, "POST", "/hook"), { status: 202, text: "node" })
      assert.deepStrictEqual(yield* send(frontPort, "GET", "/hook"), { status: 200, text: "route" })
      assert.strictEqual(taken, 2)
      remove!()
      assert.deepStrictEqual(yield* send(port, "POST", "/hook"), { status: 200, text: "route" })
      assert.strictEqual(taken, 2)
      // No server of this process listens there: nothing is taken.
      assert.isUndefined(takeRequests(1, "POST", "/hook", () => undefined))
    }).pipe(Effect.scoped))
})
