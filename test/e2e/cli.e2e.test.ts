/**
 * The command line as its help describes it, in real processes: the global `--log-level` wins over the
 * configuration's log.level (fewer lines with `warning`, debug lines with `debug`), and `demo --graph-port --pbx-port`
 * puts the simulators on the ports asked for, prints them, and stops cleanly.
 */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { healthy, startProcess, writeConfig } from "../support/processes.ts"
import { freePort, until } from "../support/waiting.ts"
import { makeTempDir } from "../support/tempDir.ts"

/** The `level` of every JSON log line in a file. */
const levels = (file: string): Array<string> =>
  readFileSync(file, "utf8").split("\n").flatMap((line) => {
    try {
      const level = (JSON.parse(line) as { level?: unknown }).level
      return typeof level === "string" ? [level] : []
    } catch {
      return []
    }
  })

const answers = (url: string) => Effect.promise(() => fetch(url).then((r) => (r.ok ? true : undefined), () => undefined))

/** `run` with a configuration whose log.level is info, and the given `--log-level`; stopped once it is healthy. */
const runWithLevel = (level: string) =>
  Effect.gen(function*() {
    const dir = yield* makeTempDir("tpc-cli-level-")
    const port = yield* freePort
    const logFile = join(dir, "out.log")
    const { child, exited } = yield* startProcess("node src/main.ts", ["run", "--config", writeConfig(dir, port), "--log-level", level], logFile)
    yield* until("/healthz", Effect.map(healthy(port), (ok) => (ok ? true : undefined)), 30_000)
    child.kill("SIGTERM")
    const exit = yield* Effect.promise(() => exited)
    assert.deepStrictEqual(exit, { code: 0, signal: null }, readFileSync(logFile, "utf8").slice(-2000))
    return levels(logFile)
  })

describe("command line (real processes)", () => {
  it.live("--log-level overrides log.level: warning hides the information lines, debug shows debug lines", () =>
    Effect.scoped(Effect.gen(function*() {
      const quiet = yield* runWithLevel("warning")
      assert.notInclude(quiet, "INFO")
      assert.notInclude(quiet, "DEBUG")
      const chatty = yield* runWithLevel("debug")
      assert.include(chatty, "INFO")
      assert.include(chatty, "DEBUG")
    })), 60_000)

  it.live("demo --graph-port --pbx-port: the simulators listen where asked, the banner says so, SIGTERM stops all", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* makeTempDir("tpc-cli-demo-")
      const [port, graphPort, pbxPort] = [yield* freePort, yield* freePort, yield* freePort]
      const logFile = join(dir, "out.log")
      const { child, exited } = yield* startProcess(
        "node src/main.ts",
        ["demo", "--port", String(port), "--graph-port", String(graphPort), "--pbx-port", String(pbxPort)],
        logFile
      )
      yield* until("the Graph simulator", answers(`http://127.0.0.1:${graphPort}/_sim/users`), 30_000)
      yield* until("the PBX simulator's control API", answers(`http://127.0.0.1:${pbxPort}/pbxs`), 30_000)
      yield* until("the status page", Effect.map(healthy(port), (ok) => (ok ? true : undefined)), 30_000)
      const banner = readFileSync(logFile, "utf8")
      assert.include(banner, `Graph simulator: http://127.0.0.1:${graphPort}/_sim`)
      assert.include(banner, `PBX simulator:   http://127.0.0.1:${pbxPort}`)
      child.kill("SIGTERM")
      assert.deepStrictEqual(yield* Effect.promise(() => exited), { code: 0, signal: null })
      assert.isUndefined(yield* answers(`http://127.0.0.1:${graphPort}/_sim/users`), "the Graph simulator stopped too")
    })), 60_000)
})
