/**
 * Temporary directories for tests, each removed with everything in it: in an Effect, when its scope closes
 * (`makeTempDir`, `tempDir`); outside one (module level, a plain `it`, a helper called from either), when the test that
 * made it finishes, or after the file's tests when it was made while none ran (`tempDirSync`).
 */
import { Effect, type Scope } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, onTestFinished } from "vitest"

/**
 * Removal that outlasts a last write: a connector stopping in the same scope may still save its state into the
 * directory while it is removed (ENOTEMPTY), so the removal is tried again a few times (Node's own retries).
 */
const removal = { recursive: true, force: true, maxRetries: 10, retryDelay: 50 } as const

/** A new directory under the system's temporary directory, named `prefix` and a random suffix. */
export const makeTempDir = (prefix: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), prefix))),
    (dir) => Effect.promise(() => fs.rm(dir, removal))
  )

export const tempDir: Effect.Effect<string, never, Scope.Scope> = makeTempDir("tpc-test-")

/** The same, made at once: removed when the running test finishes, or after the file's tests if none is running. */
export const tempDirSync = (prefix: string): string => {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix))
  const remove = () => rmSync(dir, removal)
  try {
    onTestFinished(remove)
  } catch {
    afterAll(remove)
  }
  return dir
}
