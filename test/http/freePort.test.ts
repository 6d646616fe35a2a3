/**
 * `freePort` picks the port a server will listen on later (the bench's connector, the tests' processes, the demo). A
 * port from the kernel's ephemeral range could meanwhile be handed to any socket bound to port 0 or to an outgoing
 * connection, and the server's listen then fails with EADDRINUSE (docs/performance.md, "tenants-50: the start-up
 * exit"): so it is picked outside that range.
 */
import { assert, describe, it } from "@effect/vitest"
import { createServer } from "node:net"
import { Effect } from "effect"
import { ephemeralPortRange } from "../../src/http/Listen.ts"
import { freePort } from "../../src/http/Server.ts"

const listen = (port: number) =>
  Effect.acquireRelease(
    Effect.callback<ReturnType<typeof createServer>, Error>((resume) => {
      const server = createServer()
      server.once("error", (error) => resume(Effect.fail(error)))
      server.listen(port, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
  )

describe("freePort", () => {
  const range = ephemeralPortRange()

  it.effect.skipIf(range === undefined)("picks ports outside the kernel's ephemeral range, which port-0 binds and connections use", () =>
    Effect.gen(function*() {
      const [low, high] = range!
      for (let i = 0; i < 20; i++) {
        const port = yield* freePort()
        assert.isTrue(port < low || port > high, `port ${port} is inside the ephemeral range ${low}–${high}`)
      }
    }))

  it.effect("a port it gave can be listened on; one in use is never given", () =>
    Effect.scoped(Effect.gen(function*() {
      const ports = new Set<number>()
      for (let i = 0; i < 20; i++) {
        const port = yield* freePort()
        yield* listen(port)
        ports.add(port)
      }
      // Each was listened on (and is still held) when the next was picked: twenty different ports.
      assert.strictEqual(ports.size, 20)
    })))
})
