/**
 * A PostgreSQL server left behind by a killed test run (its owner process gone) is stopped and its directory removed
 * by the next run's start; a server whose run is still alive (another checkout testing at the same time) is left alone.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { startTestPostgres, sweepStaleServers } from "../support/postgresServer.ts"
import { isAlive as alive } from "../support/node.ts"
import { makeTempDir } from "../support/tempDir.ts"


describe("stale test servers", () => {
  it.live("a server whose run is gone is stopped and removed; one whose run is alive is kept", () =>
    Effect.gen(function*() {
      const stale = yield* Effect.promise(startTestPostgres)
      const staleDir = stale.dir
      // A directory of a run that is still alive (this one): it must survive the sweep.
      const keptDir = yield* makeTempDir("tpc-test-pg-")
      writeFileSync(join(keptDir, "owner.pid"), String(process.pid))
      const postmaster = Number(readFileSync(join(staleDir, "data", "postmaster.pid"), "utf8").split("\n")[0])
      assert.isTrue(alive(postmaster))
      // The owner of the stale one exits, as a run killed with SIGKILL would.
      const gone = spawnSync(process.execPath, ["-e", "console.log(process.pid)"]).stdout.toString().trim()
      writeFileSync(join(staleDir, "owner.pid"), gone)

      yield* Effect.promise(sweepStaleServers)
      assert.isFalse(existsSync(staleDir), "the stale server's directory is gone")
      assert.isFalse(alive(postmaster), "its postmaster stopped")
      assert.isTrue(existsSync(keptDir), "a live run's server is left alone")
    }))
})
