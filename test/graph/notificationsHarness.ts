/** Test helpers: serve router layers on 127.0.0.1 with an ephemeral port, temp data directories. */
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer, Scope } from "effect"
import { HttpServer } from "effect/http"
import * as fs from "node:fs/promises"
import { createServer } from "node:http"
import * as os from "node:os"
import * as path from "node:path"

export const localServer = NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })

export const baseUrlOf = (server: HttpServer.HttpServer["Service"]): string =>
  `http://127.0.0.1:${"port" in server.address ? server.address.port : 0}`

/** Builds `layer` (which must include an HttpServer) in the current scope and returns its context and base URL. */
export const buildServer = <A, E, R>(layer: Layer.Layer<A | HttpServer.HttpServer, E, R>) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(layer)
    return { context, baseUrl: baseUrlOf(Context.get(context, HttpServer.HttpServer)) }
  })

export const tempDir: Effect.Effect<string, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "tpc-graph-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

export const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  Effect.promise(async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body)
    })
    return { status: response.status, contentType: response.headers.get("content-type"), text: await response.text() }
  })
