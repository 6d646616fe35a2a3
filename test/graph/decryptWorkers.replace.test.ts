/**
 * A decryption worker that exits (or crashes) is replaced, the requests it held fail, and the replacement is told to
 * the log: a worker thread never ends silently. A real worker thread, one that exits with code 3 at its first chunk.
 */
import { assert, describe, it } from "@effect/vitest"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { Cause, Effect, Exit } from "effect"
import { DecryptWorkers } from "../../src/graph/notifications/crypto/DecryptWorkers.ts"
import { makeTempDir } from "../support/tempDir.ts"

const exitingWorker = `
import { parentPort } from "node:worker_threads"
parentPort.on("message", (message) => { if (message.type === "decrypt") process.exit(3) })
`

describe("decryption workers", () => {
  it.live("a worker that exits: its request fails, it is replaced, and the replacement is reported", () =>
    Effect.scoped(Effect.gen(function*() {
      const file = join(yield* makeTempDir("tpc-worker-exit-"), "exiting.mjs")
      writeFileSync(file, exitingWorker)
      const reported: Array<string> = []
      const workers = new DecryptWorkers(pathToFileURL(file), 1, 0, (message) => reported.push(message))
      workers.start()
      yield* Effect.addFinalizer(() => Effect.promise(() => workers.close()))

      const answer = yield* Effect.callback<Exit.Exit<unknown>>((resume) => {
        workers.post(0, [], (exit) => resume(Effect.succeed(exit)))
      })
      assert.isTrue(Exit.isFailure(answer))
      if (Exit.isFailure(answer)) assert.include(String(Cause.squash(answer.cause)), "decryption worker failed: exited with code 3")
      assert.deepStrictEqual(reported, ["decryption worker 1 of 1 exited with code 3: started again (1 request(s) it held failed)"])
    })), 30_000)
})
