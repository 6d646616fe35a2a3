/**
 * The public port's listening sockets (src/cluster/RunnerFront.ts `acceptSockets`): several on Linux, sharing the port
 * (SO_REUSEPORT) so that a long turn of the event loop accepts as many new connections; every one of them serves the
 * front's routes; and a port already in use still fails, rather than being shared with another process.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { readFileSync } from "node:fs"
import { createServer } from "node:net"
import { acceptSockets, type FrontOptions, startRunnerFront } from "../../src/cluster/RunnerFront.ts"

const options = (port: number): FrontOptions => ({
  host: "127.0.0.1",
  port,
  runnerId: "127.0.0.1:1",
  defaultTenant: undefined,
  local: () => undefined,
  known: async () => false,
  owner: async () => undefined,
  notReady: async () => undefined,
  status: async () => ({}),
  admit: async () => "unauthorized"
})

/** Listening sockets on `port` (IPv4, from /proc/net/tcp). */
const listeners = (port: number): number => {
  const hex = port.toString(16).toUpperCase().padStart(4, "0")
  return readFileSync("/proc/net/tcp", "utf8").split("\n").filter((line) => {
    const fields = line.trim().split(/\s+/)
    return fields[1]?.endsWith(`:${hex}`) === true && fields[3] === "0A"
  }).length
}

describe("cluster: the public port's listening sockets", () => {
  it.live("several sockets on Linux share the port, and 40 new connections at once are all answered", () =>
    Effect.scoped(Effect.gen(function*() {
      const front = yield* startRunnerFront(options(0))
      if (process.platform === "linux") {
        assert.strictEqual(acceptSockets, 8)
        assert.strictEqual(listeners(front.port), 8)
      }
      const statuses = yield* Effect.promise(() =>
        Promise.all(Array.from({ length: 40 }, () => fetch(`http://127.0.0.1:${front.port}/healthz`, { headers: { connection: "close" } }).then((r) => r.status)))
      )
      assert.deepStrictEqual(new Set(statuses), new Set([200]))
    })))

  it.live("a port already in use fails as before, even held with SO_REUSEPORT (as another connector would): it is not shared", () =>
    Effect.scoped(Effect.gen(function*() {
      const holder = createServer()
      const port = yield* Effect.promise(() =>
        new Promise<number>((resolve) =>
          holder.listen({ port: 0, host: "127.0.0.1", reusePort: process.platform === "linux" }, () => resolve((holder.address() as { port: number }).port))
        )
      )
      yield* Effect.addFinalizer(() => Effect.promise(() => new Promise<void>((resolve) => holder.close(() => resolve()))))
      const exit = yield* Effect.exit(startRunnerFront(options(port)))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "EADDRINUSE")
    })))
})
