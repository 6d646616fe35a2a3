/**
 * The data directory is created 0700 whichever way the connector starts (before, `run` with a configured admin
 * password created it 0755), and the connector refuses to start, naming the path and the fix, when the directory or a
 * file in it is open to other users.
 */
import { assert, describe, it } from "@effect/vitest"
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Exit } from "effect"
import { DataDirError, prepareDataDir } from "../../src/config/DataDir.ts"
import { healthy, logMessages, startProcess, writeConfig } from "../support/processes.ts"
import { freePort, until } from "../support/waiting.ts"
import { makeTempDir } from "../support/tempDir.ts"

const mode = (path: string) => statSync(path).mode & 0o777

const failure = (exit: Exit.Exit<void, DataDirError>) => {
  assert.isTrue(Exit.isFailure(exit))
  const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail")?.error : undefined
  assert.instanceOf(error, DataDirError)
  return error!.message
}

/** `path` inside `dir` opened to others (mode `open`): refused, naming the chmod to `fix`; after that chmod, accepted. */
const refusedUntilChmod = (dir: string, path: string, open: number, fix: number) =>
  Effect.gen(function*() {
    chmodSync(path, open)
    const message = failure(yield* Effect.exit(prepareDataDir(dir)))
    assert.include(message, `${path} can be read by other users (mode ${open.toString(8).padStart(4, "0")})`)
    assert.include(message, `chmod ${fix.toString(8)} ${path}`)
    chmodSync(path, fix)
    yield* prepareDataDir(dir)
  })

describe("data directory", () => {
  it.effect("a missing directory is created 0700, also under a permissive umask", () =>
    Effect.gen(function*() {
      const dir = join(yield* makeTempDir("tpc-datadir-"), "a", "data")
      const umask = process.umask(0o022)
      try {
        yield* prepareDataDir(dir)
      } finally {
        process.umask(umask)
      }
      assert.strictEqual(mode(dir), 0o700)
      assert.strictEqual(mode(join(dir, "..")), 0o700)
    }))

  it.effect("an existing directory open to others is refused, with the chmod that fixes it", () =>
    Effect.gen(function*() {
      const dir = yield* makeTempDir("tpc-datadir-")
      yield* refusedUntilChmod(dir, dir, 0o755, 0o700)
    }))

  it.effect("a file or directory inside that others can read is refused too", () =>
    Effect.gen(function*() {
      const dir = yield* makeTempDir("tpc-datadir-")
      mkdirSync(join(dir, "accounts"), { mode: 0o700 })
      const token = join(dir, "accounts", "tech1.refresh-token.json")
      writeFileSync(token, "{}", { mode: 0o644 })
      yield* refusedUntilChmod(dir, token, 0o644, 0o600)
    }))

  it.live("run with a configured admin password: the directory it creates is 0700", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* makeTempDir("tpc-datadir-run-")
      const port = yield* freePort
      const config = writeConfig(dir, port, {
        notifications: { mode: "push", publicBaseUrl: `http://127.0.0.1:${port}` },
        accounts: [{ name: "tech1", username: "tech1@contoso.com", flow: "password", password: "process-test-account-password" }]
      })
      const { child, exited } = yield* startProcess("node src/main.ts", ["run", "--config", config], join(dir, "out.log"))
      yield* until("/healthz", Effect.map(healthy(port), (ok) => (ok ? true : undefined)), 30_000)
      // The notification key is written at start in push mode: the directory and what is in it are private.
      yield* until("the key file", Effect.sync(() => {
        try {
          return statSync(join(dir, "data", "rich-notification-keys.json")).isFile() ? true : undefined
        } catch {
          return undefined
        }
      }))
      assert.strictEqual(mode(join(dir, "data")), 0o700)
      assert.strictEqual(mode(join(dir, "data", "rich-notification-keys.json")), 0o600)
      child.kill("SIGTERM")
      assert.strictEqual((yield* Effect.promise(() => exited)).code, 0)
    })), 60_000)

  it.live("run refuses to start on a data directory others can read: exit 1 and the fix", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* makeTempDir("tpc-datadir-run-")
      const data = join(dir, "data")
      mkdirSync(data, { mode: 0o755 })
      chmodSync(data, 0o755)
      const logFile = join(dir, "out.log")
      const { exited } = yield* startProcess("node src/main.ts", ["run", "--config", writeConfig(dir, yield* freePort)], logFile)
      assert.strictEqual((yield* Effect.promise(() => exited)).code, 1)
      const output = readFileSync(logFile, "utf8")
      assert.include(output, `${data} can be read by other users (mode 0755)`)
      assert.include(output, `chmod 700 ${data}`)
      assert.notInclude(logMessages(logFile).join("\n"), "starting")
    })), 60_000)
})
