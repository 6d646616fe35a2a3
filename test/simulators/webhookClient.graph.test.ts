/**
 * The Graph simulator's webhook client (src/simulators/graph/SimWebhookClient.ts), against a plain Node server over
 * real sockets: the project's choice for what Graph leaves undocumented — reuse an idle connection, else open a new
 * one, without a limit — and what a POST's answer carries; a POST not answered within its time fails.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { webhookPost } from "../../src/simulators/graph/SimWebhookClient.ts"

interface Endpoint {
  readonly url: string
  /** The connection of each request, in order. */
  readonly connections: Array<unknown>
  readonly bodies: Array<string>
  /** Requests not answered yet. */
  readonly held: Array<ServerResponse>
}

/** A server that records each request's body and connection, answering through `answer` (held when it returns false). */
const server = (answer: (request: IncomingMessage, response: ServerResponse, body: string) => boolean) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly endpoint: Endpoint; readonly close: () => void }>((resume) => {
      const connections: Array<unknown> = []
      const bodies: Array<string> = []
      const held: Array<ServerResponse> = []
      const http = createServer((request, response) => {
        connections.push(request.socket)
        const chunks: Array<Buffer> = []
        request.on("data", (chunk: Buffer) => chunks.push(chunk))
        request.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8")
          bodies.push(body)
          if (!answer(request, response, body)) held.push(response)
        })
      })
      http.listen(0, "127.0.0.1", () => {
        const { port } = http.address() as AddressInfo
        const close = () => {
          for (const response of held) response.destroy()
          http.closeAllConnections()
          http.close()
        }
        resume(Effect.succeed({ endpoint: { url: `http://127.0.0.1:${port}/notify`, connections, bodies, held }, close }))
      })
    }),
    ({ close }) => Effect.sync(close)
  ).pipe(Effect.map(({ endpoint }) => endpoint))

const accepted = (_request: IncomingMessage, response: ServerResponse) => {
  response.writeHead(202, { "content-type": "text/plain; charset=utf-8" })
  response.end("queued")
  return true
}

const post = (url: string, body: string, timeoutMillis = 5_000) =>
  Effect.promise(() => webhookPost(url, { headers: { "content-type": "application/json" }, body, timeoutMillis }))

describe("the Graph simulator's webhook client (real sockets)", () => {
  it.live("a POST carries its body and gets the status, content type and text of the answer", () =>
    Effect.scoped(Effect.gen(function*() {
      const endpoint = yield* server(accepted)
      const answer = yield* post(endpoint.url, JSON.stringify({ value: ["é", 1] }))
      assert.deepStrictEqual(answer, { status: 202, contentType: "text/plain; charset=utf-8", text: "queued" })
      assert.deepStrictEqual(endpoint.bodies, ['{"value":["é",1]}'])
    })))

  it.live("an idle connection is reused; POSTs in flight together open a connection each, reused afterwards", () =>
    Effect.scoped(Effect.gen(function*() {
      // The first three POSTs are held until all three arrived: three connections at once.
      const three = yield* Deferred.make<void>()
      let arrived = 0
      const endpoint = yield* server((request, response) => {
        arrived++
        if (arrived > 3) return accepted(request, response)
        // Once this one is held too (the server holds it when this returns).
        if (arrived === 3) queueMicrotask(() => Deferred.doneUnsafe(three, Effect.void))
        return false
      })
      const together = Effect.all([post(endpoint.url, "1"), post(endpoint.url, "2"), post(endpoint.url, "3")], { concurrency: "unbounded" })
      const answers = yield* Effect.forkChild(together)
      yield* Deferred.await(three)
      for (const response of endpoint.held.splice(0)) accepted(undefined as never, response)
      assert.deepStrictEqual((yield* Fiber.join(answers)).map((a) => a.status), [202, 202, 202])
      assert.strictEqual(new Set(endpoint.connections).size, 3)
      // One after the other: each finds an idle connection of the three.
      for (const body of ["4", "5", "6", "7"]) assert.strictEqual((yield* post(endpoint.url, body)).status, 202)
      assert.strictEqual(new Set(endpoint.connections).size, 3)
    })))

  it.live("a POST not answered within its time fails, and its connection is not used again", () =>
    Effect.scoped(Effect.gen(function*() {
      const endpoint = yield* server((request, response, body) => (body === "late" ? false : accepted(request, response)))
      const late = yield* Effect.promise(() => webhookPost(endpoint.url, { headers: {}, body: "late", timeoutMillis: 200 }).then(() => "answered", (error: Error) => error.message))
      assert.match(late, /no answer within 200 ms/)
      assert.strictEqual((yield* post(endpoint.url, "next")).status, 202)
      assert.strictEqual(new Set(endpoint.connections).size, 2)
    })))
})
