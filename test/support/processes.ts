/** The connector as a real process: started the way an administrator would, killed with its process group afterwards. */
import { type ChildProcess, spawn } from "node:child_process"
import { openSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, type Scope } from "effect"
import * as YAML from "yaml"
import { shellEnv } from "./node.ts"

export const repositoryRoot = join(import.meta.dirname, "../..")
export const mainFile = join(repositoryRoot, "src/main.ts")
/** The package's bin (built to dist/bin.js): its shebang runs `env -S node <flags>`, which becomes node itself. */
const binFile = join(repositoryRoot, "src/bin.ts")
const binFlags = (readFileSync(binFile, "utf8").split("\n", 1)[0] ?? "").split(/\s+/).filter((word) => word.startsWith("--"))
const env = shellEnv()

export type Launch = "npm start" | "the bin" | "node src/main.ts"

/**
 * A configuration that starts without any outside system: Graph at an address nothing listens on (poll mode, or push
 * mode with a loopback webhook URL).
 */
export const writeConfig = (dir: string, port: number, overrides: Record<string, unknown> = {}) => {
  const file = join(dir, "connector.yaml")
  writeFileSync(file, YAML.stringify({
    tenantId: "contoso.onmicrosoft.com",
    clientId: "11111111-2222-3333-4444-555555555555",
    app: { clientSecret: "process-test-client-secret" },
    graph: { loginBaseUrl: "http://127.0.0.1:9", graphBaseUrl: "http://127.0.0.1:9", jwksUrl: "http://127.0.0.1:9/keys" },
    notifications: { mode: "poll" },
    pbx: { masterPbx: "pbx-master", appPassword: "process-test-app-password" },
    http: { host: "127.0.0.1", port },
    admin: { password: "process-test-admin-password" },
    dataDir: join(dir, "data"),
    log: { format: "json", level: "info" },
    ...overrides
  }))
  return file
}

/** Starts the connector in its own process group; the scope's end kills the group (anything left behind included). */
export const startProcess = (
  launch: Launch,
  args: ReadonlyArray<string>,
  logFile: string,
  extraEnv: Readonly<Record<string, string>> = {}
): Effect.Effect<{ readonly child: ChildProcess; readonly exited: Promise<{ code: number | null; signal: string | null }> }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const out = openSync(logFile, "w")
    const options = { cwd: repositoryRoot, env: { ...env, ...extraEnv }, detached: true, stdio: ["ignore", out, out] as ["ignore", number, number] }
    const npm = process.env["npm_execpath"]
    const child = launch === "npm start"
      ? npm !== undefined
        ? spawn(process.execPath, [npm, "start", "--", ...args], options)
        : spawn("npm", ["start", "--", ...args], options)
      : launch === "the bin"
      ? spawn(process.execPath, [...binFlags, binFile, ...args], options)
      : spawn(process.execPath, [mainFile, ...args], options)
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
    return { child, exited }
  })

export const healthy = (port: number) =>
  Effect.promise(() => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status === 200, () => false))

/** The `message` of every JSON log line in a file. */
export const logMessages = (file: string): Array<string> =>
  readFileSync(file, "utf8").split("\n").flatMap((line) => {
    try {
      const message = (JSON.parse(line) as { message?: unknown }).message
      return typeof message === "string" ? [message] : []
    } catch {
      return []
    }
  })
