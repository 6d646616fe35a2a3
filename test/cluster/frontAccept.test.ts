/**
 * The public port's listening sockets (src/cluster/FrontSockets.ts `acceptSockets`): many on Linux, sharing the port
 * (SO_REUSEPORT) so that a turn of the event loop accepts as many new connections (libuv takes one per socket and
 * turn); every one of them serves the front's routes; and a port already in use still fails, rather than being shared
 * with another process.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { readFileSync } from "node:fs"
import { connect, createServer } from "node:net"
import { Worker } from "node:worker_threads"
import { acceptSockets } from "../../src/cluster/FrontSockets.ts"
import { type FrontOptions, startRunnerFront } from "../../src/cluster/RunnerFront.ts"

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

/**
 * A client thread opens `count` connections to `port` and sends each a `/healthz` request, while this thread is blocked
 * (none can be accepted); then this thread runs turns of 10 ms of work each, counting them in shared memory, and the
 * client reports the turn in which its last answer came: how many turns it took to accept them all.
 */
const turnsToAnswerAll = (port: number, count: number): Promise<number> => {
  const shared = new Int32Array(new SharedArrayBuffer(8)) // [0]: every connection established; [1]: this thread's turns
  const client = new Worker(
    `const { workerData, parentPort } = require("node:worker_threads")
    const { connect } = require("node:net")
    const view = new Int32Array(workerData.shared)
    let connected = 0, answered = 0, last = 0
    for (let i = 0; i < workerData.count; i++) {
      const socket = connect(workerData.port, "127.0.0.1", () => {
        socket.write("GET /healthz HTTP/1.1\\r\\nhost: front\\r\\nconnection: close\\r\\n\\r\\n")
        if (++connected === workerData.count) { Atomics.store(view, 0, 1); Atomics.notify(view, 0) }
      })
      socket.on("error", () => {})
      socket.once("data", () => {
        last = Math.max(last, Atomics.load(view, 1))
        if (++answered === workerData.count) parentPort.postMessage(last)
      })
    }`,
    { eval: true, workerData: { port, count, shared: shared.buffer } }
  )
  assert.strictEqual(Atomics.wait(shared, 0, 0, 20_000), "ok", "the client's connections were not established")
  return new Promise<number>((resolve) => {
    let done = false
    client.once("message", (last: number) => {
      done = true
      void client.terminate()
      resolve(last)
    })
    const turn = () => {
      if (done) return
      const until = performance.now() + 10
      while (performance.now() < until) {
        // a turn of the event loop busy with other work
      }
      Atomics.add(shared, 1, 1)
      setImmediate(turn)
    }
    setImmediate(turn)
  })
}

describe("cluster: the public port's listening sockets", () => {
  it.live.skipIf(process.platform !== "linux")(
    "300 connections waiting at once are all answered within 20 turns of a busy event loop (8 sockets: ≥ 38 turns)",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const front = yield* startRunnerFront(options(0))
        const turns = yield* Effect.promise(() => turnsToAnswerAll(front.port, 300))
        assert.isAtMost(turns, 20)
      }))
  )


  it.live("several sockets on Linux share the port, and 40 new connections at once are all answered", () =>
    Effect.scoped(Effect.gen(function*() {
      const front = yield* startRunnerFront(options(0))
      if (process.platform === "linux") {
        assert.strictEqual(acceptSockets, 256)
        assert.strictEqual(listeners(front.port), 256)
      }
      const statuses = yield* Effect.promise(() =>
        Promise.all(Array.from({ length: 40 }, () => fetch(`http://127.0.0.1:${front.port}/healthz`, { headers: { connection: "close" } }).then((r) => r.status)))
      )
      assert.deepStrictEqual(new Set(statuses), new Set([200]))
    })))

  it.live("one HTTP server serves every socket: stopping the front closes all 20 kept-alive connections, wherever accepted", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const front = yield* startRunnerFront(options(0)).pipe(Scope.provide(scope))
      const closed = yield* Effect.promise(() =>
        Promise.all(Array.from({ length: 20 }, () =>
          new Promise<{ readonly gone: Promise<void> }>((answered) => {
            const socket = connect(front.port, "127.0.0.1", () => socket.write("GET /healthz HTTP/1.1\r\nhost: front\r\n\r\n"))
            const gone = new Promise<void>((resolve) => socket.once("close", () => resolve()))
            socket.on("error", () => {})
            socket.once("data", () => answered({ gone }))
          })))
      )
      yield* Scope.close(scope, Exit.void)
      yield* Effect.promise(() => Promise.all(closed.map((connection) => connection.gone))).pipe(Effect.timeout("5 seconds"))
    }))

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
