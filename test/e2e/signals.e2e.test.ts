/**
 * SIGTERM and SIGINT (and SIGHUP, the terminal gone) stop the connector whichever way it was started — `npm start`, the package's bin (src/main.ts
 * run by its shebang) or `node src/main.ts` — and the process that received the signal is the one that stops: it
 * exits 0, its port is free afterwards, and its log tells the stop from a crash (stopping, each step in the documented
 * order, stopped, exit code).
 */
import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { Effect } from "effect"
import { healthy, type Launch, logMessages, startProcess, writeConfig } from "../support/processes.ts"
import { freePort, until } from "../support/waiting.ts"
import { makeTempDir } from "../support/tempDir.ts"

const stopWith = (launch: Launch, signal: "SIGTERM" | "SIGINT" | "SIGHUP") =>
  Effect.gen(function*() {
    const dir = yield* makeTempDir("tpc-signal-")
    const port = yield* freePort
    const logFile = join(dir, "out.log")
    const { child, exited } = yield* startProcess(launch, ["run", "--config", writeConfig(dir, port)], logFile)
    yield* until(`${launch}: /healthz`, Effect.map(healthy(port), (ok) => (ok ? true : undefined)), 30_000)
    child.kill(signal)
    const exit = yield* Effect.promise(() => exited)
    return { exit, portFree: !(yield* healthy(port)), log: logMessages(logFile) }
  })

const stopOrder = [
  "stopping the flow",
  "stopping the HTTP server",
  "stopping the presence reads",
  "stopping the shared services"
]

describe("stop signals (real processes)", () => {
  for (const [launch, signal] of [["npm start", "SIGTERM"], ["npm start", "SIGINT"], ["the bin", "SIGTERM"], ["node src/main.ts", "SIGINT"], ["node src/main.ts", "SIGHUP"]] as const) {
    it.live(`${launch}, ${signal}: the connector itself stops, exits 0, frees its port and logs the stop`, () =>
      Effect.scoped(Effect.gen(function*() {
        const { exit, log, portFree } = yield* stopWith(launch, signal)
        assert.deepStrictEqual(exit, { code: 0, signal: null }, log.slice(-10).join("\n"))
        assert.isTrue(portFree, "nothing serves the port after the exit")
        const stopping = log.indexOf(`stopping (${signal} received)`)
        assert.isAtLeast(stopping, 0, log.join("\n"))
        const steps = stopOrder.map((step) => log.findIndex((line) => line.startsWith(step)))
        assert.deepStrictEqual([...steps].sort((a, b) => a - b), steps, "the steps in the documented order")
        assert.isAbove(steps[0]!, stopping)
        assert.match(log.at(-1)!, /^stopped after [\d.]+ s; exit code 0$/)
      })), 60_000)
  }
})
