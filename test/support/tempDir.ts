/** Temporary directories for tests, each removed with everything in it when its scope closes. */
import { Effect, type Scope } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"

/** A new directory under the system's temporary directory, named `prefix` and a random suffix. */
export const makeTempDir = (prefix: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), prefix))),
    (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
  )

export const tempDir: Effect.Effect<string, never, Scope.Scope> = makeTempDir("tpc-test-")
