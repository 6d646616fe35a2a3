import { assert, describe, it } from "@effect/vitest"
import { Console, Deferred, Effect, Fiber, Redacted } from "effect"
import { createConnection, createServer, type Socket } from "node:net"
import type { AddressInfo } from "node:net"
import type { PbxSimulatorHandle } from "../../src/simulators/pbx/PbxSimulator.ts"
import { runPbxSimulator } from "../../src/simulators/pbx/Standalone.ts"
import { allLoggedIn, password, startConnector } from "../pbx/harness.ts"

/** A console that keeps what is printed, and lets a test wait for a line. */
const captureConsole = () => {
  const lines: Array<string> = []
  const waiters = new Set<() => void>()
  const push = (...args: ReadonlyArray<unknown>) => {
    lines.push(args.map(String).join(" "))
    for (const waiter of [...waiters]) waiter()
  }
  const console: Console.Console = Object.assign(Object.create(globalThis.console), { log: push, error: push })
  const waitForLines = (check: (lines: ReadonlyArray<string>) => boolean) =>
    Effect.callback<void>((resume) => {
      const attempt = () => {
        if (!check(lines)) return
        waiters.delete(attempt)
        resume(Effect.void)
      }
      waiters.add(attempt)
      attempt()
      return Effect.sync(() => waiters.delete(attempt))
    })
  return { lines, console, waitForLines }
}

/**
 * A TCP gate in front of the connector on an ephemeral port: while closed it resets every connection (as if nothing
 * listened), counting the attempts; once opened it forwards bytes to the connector.
 */
const tcpGate = (target: string, attemptsBeforeReady: number) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly url: string; open: () => void; readonly attempted: Deferred.Deferred<void>; readonly close: () => void }>(
      (resume) => {
        const targetUrl = new URL(target)
        const attempted = Deferred.makeUnsafe<void>()
        const sockets = new Set<Socket>()
        let refused = 0
        let isOpen = false
        const server = createServer((socket) => {
          sockets.add(socket)
          socket.on("close", () => sockets.delete(socket))
          socket.on("error", () => {})
          if (!isOpen) {
            socket.resetAndDestroy()
            if (++refused >= attemptsBeforeReady) Deferred.doneUnsafe(attempted, Effect.void)
            return
          }
          const upstream = createConnection(Number(targetUrl.port), targetUrl.hostname)
          sockets.add(upstream)
          upstream.on("error", () => socket.destroy())
          upstream.on("close", () => socket.destroy())
          socket.on("close", () => upstream.destroy())
          socket.pipe(upstream).pipe(socket)
        })
        server.listen(0, "127.0.0.1", () => {
          const port = (server.address() as AddressInfo).port
          resume(Effect.succeed({
            url: `ws://127.0.0.1:${port}${targetUrl.pathname}`,
            open: () => {
              isOpen = true
            },
            attempted,
            close: () => {
              for (const socket of sockets) socket.destroy()
              server.close()
            }
          }))
        })
      }
    ),
    (gate) => Effect.sync(gate.close)
  )

/** `simulate pbx` in a fiber of the test, printing into a captured console; `ready` once its control API listens. */
const forkSimulator = (options: Omit<Parameters<typeof runPbxSimulator>[0], "ready">) =>
  Effect.gen(function*() {
    const ready = yield* Deferred.make<PbxSimulatorHandle>()
    const out = captureConsole()
    const fiber = yield* runPbxSimulator({ ...options, ready }).pipe(Effect.provideService(Console.Console, out.console), Effect.forkChild)
    return { ready, out, fiber }
  })

describe("simulate pbx (standalone)", () => {
  it.live("master + slave connect to the connector; their users replicate into its directory", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const { ready, out, fiber } = yield* forkSimulator({
        connect: connector.url,
        password: Redacted.make(password),
        users: 6,
        controlPort: 0,
        reconnectDelayMs: 100
      })
      const sim = yield* Deferred.await(ready)
      yield* connector.waitStates(allLoggedIn(["pbx-master", "pbx-slave"]))
      yield* connector.directory.ready
      const users = [...(yield* connector.directory.snapshot).values()]
      assert.strictEqual(users.length, 6)
      const user3 = users.find((user) => user.emails.includes("user3@contoso.com"))
      const user4 = users.find((user) => user.emails.includes("user4@contoso.com"))
      assert.deepInclude(user3!, { cn: "User 3", h323: "user3", loc: "pbx-master", apps: ["teams-presence"] })
      assert.strictEqual(user4!.loc, "pbx-slave")

      assert.isDefined(sim.controlUrl)
      const printed = out.lines.join("\n")
      assert.include(printed, `control API:     ${sim.controlUrl}`)
      assert.include(printed, "masterPbx: pbx-master")
      assert.notInclude(printed, password)
      const control = yield* Effect.promise(() => fetch(`${sim.controlUrl}/pbxs`).then((r) => r.json() as Promise<Array<{ name: string; loggedIn: boolean }>>))
      assert.deepStrictEqual(control.map((pbx) => [pbx.name, pbx.loggedIn]), [["pbx-master", true], ["pbx-slave", true]])
      // The status reporter says so too.
      yield* out.waitForLines((lines) => lines.filter((line) => line.endsWith(": logged in")).length === 2)

      yield* Fiber.interrupt(fiber)
      yield* connector.waitStates((states) => [...states.values()].every((state) => !state.connected))
      const after = yield* Effect.promise(() => fetch(`${sim.controlUrl}/pbxs`).then(() => "answered", () => "closed"))
      assert.strictEqual(after, "closed")
    }).pipe(Effect.scoped))

  it.live("started before the connector is reachable, it keeps retrying and logs in once it is", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const gate = yield* tcpGate(connector.url, 4)
      const { out, fiber } = yield* forkSimulator({
        connect: gate.url,
        password: Redacted.make(password),
        usersFile: undefined,
        users: 2,
        controlPort: 0,
        domain: "branch.example.com",
        reconnectDelayMs: 20
      })
      yield* Deferred.await(gate.attempted)
      yield* out.waitForLines((lines) => lines.some((line) => line.endsWith("not connected (retrying)")))
      assert.isFalse(out.lines.some((line) => line.endsWith("logged in")))
      gate.open()
      yield* connector.waitStates(allLoggedIn(["pbx-master", "pbx-slave"]))
      yield* connector.directory.ready
      assert.strictEqual((yield* connector.directory.snapshot).size, 2)
      assert.include(out.lines.join("\n"), "of branch.example.com")
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.scoped))

  it.live("a wrong password is refused by the connector and reported; a bad --connect fails before starting", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const { ready, out, fiber } = yield* forkSimulator({
        connect: connector.url,
        password: Redacted.make("not-the-password"),
        users: 1,
        controlPort: 0,
        reconnectDelayMs: 50
      })
      const sim = yield* Deferred.await(ready)
      yield* out.waitForLines((lines) => lines.some((line) => line.includes("refused the login")))
      assert.isFalse(sim.peek.status().some((status) => status.loggedIn))
      yield* Fiber.interrupt(fiber)

      const error = yield* Effect.flip(runPbxSimulator({ connect: "http://127.0.0.1:1/pbx", password: Redacted.make("x"), controlPort: 0 }))
      assert.deepStrictEqual(error.problems.map((p) => p.path), ["--connect"])
    }).pipe(Effect.scoped))
})
