/**
 * SIGTERM and SIGINT stop the connector whichever way it was started — `npm start`, the package's bin (src/main.ts
 * run by its shebang) or `node src/main.ts` — and the process that received the signal is the one that stops: it
 * exits 0, its port is free afterwards, and its log tells the stop from a crash (stopping, each step in the documented
 * order, stopped, exit code).
 */
import { assert, describe, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { delimiter, dirname, join } from "node:path"
import { Effect } from "effect"
import * as YAML from "yaml"
import { freePort, until } from "../support/waiting.ts"

const root = join(import.meta.dirname, "../..")
const main = join(root, "src/main.ts")
const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env["PATH"] ?? ""}` }

type Launch = "npm start" | "the bin" | "node src/main.ts"

const start = (launch: Launch, args: ReadonlyArray<string>, out: number): ChildProcess => {
  // Its own process group, so that the finalizer can take down anything left behind (an orphaned node).
  const options = { cwd: root, env, detached: true, stdio: ["ignore", out, out] as ["ignore", number, number] }
  switch (launch) {
    case "npm start":
      return process.env["npm_execpath"] !== undefined
        ? spawn(process.execPath, [process.env["npm_execpath"], "start", "--", ...args], options)
        : spawn("npm", ["start", "--", ...args], options)
    case "the bin":
      return spawn(main, args, options)
    case "node src/main.ts":
      return spawn(process.execPath, [main, ...args], options)
  }
}

/** A configuration that starts without any outside system: poll mode against an address nothing listens on. */
const writeConfig = (dir: string, port: number) => {
  const file = join(dir, "connector.yaml")
  writeFileSync(file, YAML.stringify({
    tenantId: "contoso.onmicrosoft.com",
    clientId: "11111111-2222-3333-4444-555555555555",
    app: { clientSecret: "signal-test-client-secret" },
    graph: { loginBaseUrl: "http://127.0.0.1:9", graphBaseUrl: "http://127.0.0.1:9" },
    notifications: { mode: "poll" },
    pbx: { masterPbx: "pbx-master", appPassword: "signal-test-app-password" },
    http: { host: "127.0.0.1", port },
    admin: { password: "signal-test-admin-password" },
    dataDir: join(dir, "data"),
    log: { format: "json", level: "info" }
  }))
  return file
}

const healthy = (port: number) =>
  Effect.promise(() => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status === 200, () => false))

const messages = (log: string): Array<string> =>
  log.split("\n").flatMap((line) => {
    try {
      const message = (JSON.parse(line) as { message?: unknown }).message
      return typeof message === "string" ? [message] : []
    } catch {
      return []
    }
  })

const stopWith = (launch: Launch, signal: "SIGTERM" | "SIGINT") =>
  Effect.gen(function*() {
    const dir = mkdtempSync(join(tmpdir(), "tpc-signal-"))
    const port = yield* freePort
    const logFile = join(dir, "out.log")
    const child = start(launch, ["run", "--config", writeConfig(dir, port)], openSync(logFile, "w"))
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal }))
    )
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        try {
          process.kill(-child.pid!, "SIGKILL")
        } catch {
          // the group is gone: nothing was left behind
        }
      })
    )
    yield* until(`${launch}: /healthz`, Effect.map(healthy(port), (ok) => (ok ? true : undefined)), 30_000)
    child.kill(signal)
    const exit = yield* Effect.promise(() => exited)
    return { exit, portFree: !(yield* healthy(port)), log: messages(readFileSync(logFile, "utf8")) }
  })

const stopOrder = [
  "stopping the flow",
  "stopping the HTTP server",
  "stopping the presence reads",
  "stopping the shared services"
]

describe("stop signals (real processes)", () => {
  for (const [launch, signal] of [["npm start", "SIGTERM"], ["npm start", "SIGINT"], ["the bin", "SIGTERM"], ["node src/main.ts", "SIGINT"]] as const) {
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
