/**
 * A connector that cannot start ends by itself: its log must say why, in an administrator's words, and its exit code
 * must not be 0. The public port taken by another process is the case a bench met (docs/performance.md, "tenants-50:
 * the start-up exit"): the port is really taken here, by a server of the test.
 */
import { assert, describe, it } from "@effect/vitest"
import { randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import { createServer } from "node:net"
import { join } from "node:path"
import { Effect } from "effect"
import { logMessages, startProcess, writeConfig } from "../support/processes.ts"
import { freePort } from "../support/waiting.ts"
import { makeTempDir } from "../support/tempDir.ts"

describe("a start that fails (real process)", () => {
  it.live("the public port in use: \"cannot start: port … is already in use\", then \"stopped; exit code 1\", exit 1", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* makeTempDir("tpc-port-taken-")
      const port = yield* freePort
      const holder = createServer()
      yield* Effect.callback<void>((resume) => void holder.listen(port, "127.0.0.1", () => resume(Effect.void)))
      yield* Effect.addFinalizer(() => Effect.callback<void>((resume) => void holder.close(() => resume(Effect.void))))

      const logFile = join(dir, "out.log")
      const { exited } = yield* startProcess("node src/main.ts", ["run", "--config", writeConfig(dir, port)], logFile)
      const exit = yield* Effect.promise(() => exited)
      const log = logMessages(logFile)

      assert.deepStrictEqual(exit, { code: 1, signal: null }, log.join("\n"))
      assert.include(
        log,
        `cannot start: port ${port} on 127.0.0.1 is already in use (another process listens there): stop it or choose another port (http.port, PORT)`
      )
      assert.strictEqual(log.at(-1), "stopped; exit code 1")
    })), 60_000)

  it.live("a cluster runner without its database: one \"cannot start: …\" line with the reason, no password, exit 1", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* makeTempDir("tpc-no-database-")
      const [port, clusterPort, databasePort] = [yield* freePort, yield* freePort, yield* freePort]
      const logFile = join(dir, "out.log")
      const { exited } = yield* startProcess("node src/main.ts", ["run", "--cluster", "--config", writeConfig(dir, port)], logFile, {
        CONNECTOR_DATABASE_URL: `postgres://connector:database-secret-pw@127.0.0.1:${databasePort}/connector`,
        CONNECTOR_STATE_KEY: randomBytes(32).toString("base64"),
        CONNECTOR_CLUSTER_PORT: String(clusterPort)
      })
      const exit = yield* Effect.promise(() => exited)
      const log = logMessages(logFile)

      assert.deepStrictEqual(exit, { code: 1, signal: null }, log.join("\n"))
      const reasons = log.filter((line) => line.startsWith("cannot start"))
      assert.strictEqual(reasons.length, 1, log.join("\n"))
      assert.include(reasons[0], `cannot connect to the state database 127.0.0.1:${databasePort}/connector`)
      assert.notInclude(readFileSync(logFile, "utf8"), "database-secret-pw")
      assert.strictEqual(log.at(-1), "stopped; exit code 1")
    })), 60_000)
})
