/**
 * The reason a run ended with, as its log gives it (src/connector/Shutdown.ts `failureReason`): a listen refused by
 * the kernel — from a real socket on a really occupied port, as Node reports it and as effect's HTTP server wraps it —
 * in an administrator's words (with why a port of the kernel's ephemeral range may be taken); any other error by its
 * own message.
 */
import { assert, describe, it } from "@effect/vitest"
import { createServer } from "node:net"
import { Cause, Effect, Exit, Layer } from "effect"
import { failureReason } from "../../src/connector/Shutdown.ts"
import { ephemeralPortRange } from "../../src/http/Listen.ts"
import { freePort, serveRoutes } from "../../src/http/Server.ts"

/** A port held by a server of the test for the scope: `port`, or one the kernel picks (0). */
const occupy = (port: number) =>
  Effect.acquireRelease(
    Effect.callback<ReturnType<typeof createServer>>((resume) => {
      const server = createServer()
      server.listen(port, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
  ).pipe(Effect.map((server) => (server.address() as { port: number }).port))

/** A port outside the kernel's ephemeral range, held. */
const occupiedPort = Effect.flatMap(freePort(), occupy)

/** What listening on `port` fails with, as Node reports it. */
const listenError = (port: number) =>
  Effect.callback<Error>((resume) => {
    const server = createServer()
    server.once("error", (error) => resume(Effect.succeed(error)))
    server.listen(port, "127.0.0.1", () => server.close(() => resume(Effect.die(new Error("the port was free")))))
  })

const inUse = (port: number) =>
  `port ${port} on 127.0.0.1 is already in use (another process listens there): stop it or choose another port (http.port, PORT)`

describe("failureReason", () => {
  it.effect("a port in use, from Node's own listen error", () =>
    Effect.scoped(Effect.gen(function*() {
      const port = yield* occupiedPort
      assert.strictEqual(failureReason(Cause.die(yield* listenError(port))), inUse(port))
    })))

  it.effect("a port in use, from effect's HTTP server, which wraps Node's error", () =>
    Effect.scoped(Effect.gen(function*() {
      const port = yield* occupiedPort
      const exit = yield* Effect.exit(Effect.scoped(Layer.build(serveRoutes(Layer.empty, { host: "127.0.0.1", port }))))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) assert.strictEqual(failureReason(exit.cause), inUse(port))
    })))

  it.effect.skipIf(ephemeralPortRange() === undefined)("a port in use inside the ephemeral range: why it may be taken, and what to do", () =>
    Effect.scoped(Effect.gen(function*() {
      // A port the kernel picked for a port-0 server: one of its ephemeral range.
      const port = yield* occupy(0)
      const [low, high] = ephemeralPortRange()!
      assert.strictEqual(
        failureReason(Cause.die(yield* listenError(port))),
        inUse(port) + `; it lies in the range the kernel hands out to outgoing connections and port-0 servers (${low}–${high}, ` +
          "net.ipv4.ip_local_port_range), where any program may hold it for a while: choose one outside it"
      )
    })))

  it("any other error by its message; a value that is no error as text", () => {
    assert.strictEqual(failureReason(Cause.die(new Error("the state store is gone"))), "the state store is gone")
    assert.strictEqual(failureReason(Cause.fail("no configuration")), "no configuration")
    assert.strictEqual(failureReason(Cause.fail({ _tag: "SomeError", message: "its own words" })), "its own words")
    // A `listen` code without the syscall is no listen problem.
    assert.strictEqual(failureReason(Cause.die(Object.assign(new Error("elsewhere"), { code: "EADDRINUSE" }))), "elsewhere")
  })
})
