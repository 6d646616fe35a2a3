/**
 * The bench's webhook tap (bench/taps.ts) sees the POSTs the Graph simulator sends through its webhook client
 * (src/simulators/graph/SimWebhookClient.ts): each notification POST timed and each user in it stamped, other URLs
 * and POSTs outside the recording left alone. Real sockets, against a plain Node server.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { tapWebhookPosts } from "../../bench/taps.ts"
import { webhookClient } from "../../src/simulators/graph/SimWebhookClient.ts"

const userA = "0f9b7f8e-1b2c-4d5e-8f90-a1b2c3d4e5f6"
const userB = "1a2b3c4d-5e6f-4a8b-9c0d-e1f2a3b4c5d6"

/** A notification body naming `users` as presence resources, as the simulator's items do. */
const body = (...users: Array<string>) => JSON.stringify({ value: users.map((id) => ({ resource: `communications/presences/${id}` })) })

const acceptingServer = Effect.acquireRelease(
  Effect.callback<{ readonly url: string; readonly close: () => void }>((resume) => {
    const http = createServer((request, response) => {
      request.resume()
      request.on("end", () => {
        response.writeHead(202)
        response.end()
      })
    })
    http.listen(0, "127.0.0.1", () => {
      const { port } = http.address() as AddressInfo
      resume(Effect.succeed({ url: `http://127.0.0.1:${port}`, close: () => (http.closeAllConnections(), http.close()) }))
    })
  }),
  ({ close }) => Effect.sync(close)
)

describe("the bench's webhook tap", () => {
  it.live("times the notification POSTs sent through the simulator's client while recording, and stamps their users", () =>
    Effect.scoped(Effect.gen(function*() {
      const { url } = yield* acceptingServer
      const tap = yield* Effect.acquireRelease(Effect.sync(() => tapWebhookPosts((target) => target.endsWith("/notify"))), (t) => Effect.sync(t.uninstall))
      const send = (path: string, text: string) =>
        Effect.promise(() => webhookClient.post(`${url}${path}`, { headers: { "content-type": "application/json" }, body: text, timeoutMillis: 5_000 }))
      yield* send("/notify", body(userA))
      assert.strictEqual(tap.posts.length, 0, "not recording yet")
      tap.start()
      assert.strictEqual((yield* send("/notify", body(userA, userB))).status, 202)
      yield* send("/lifecycle", body(userB))
      tap.stop()
      yield* send("/notify", body(userB))
      assert.strictEqual(tap.posts.length, 1)
      const [post] = tap.posts
      assert.strictEqual(post!.status, 202)
      assert.strictEqual(post!.items, 2)
      assert.isAtLeast(post!.answeredAt, post!.startedAt)
      assert.strictEqual(tap.sentAt.get(userA), post!.startedAt)
      assert.strictEqual(tap.answeredAt.get(userB), post!.answeredAt)
    })))
})
