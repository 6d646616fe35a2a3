/**
 * Removing a tenant's directory while its work still saves files into it (the work stops only once the removal is
 * read): the removal succeeds, however many files appear meanwhile.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { mkdtemp, readdir, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { removePath, writeJson } from "../../src/state/files/JsonFiles.ts"

describe("removing a directory that is being written", () => {
  it.live("succeeds while another fiber keeps saving files into it", () =>
    Effect.gen(function*() {
      const root = yield* Effect.promise(() => mkdtemp(join(tmpdir(), "tpc-removal-")))
      yield* Effect.addFinalizer(() => Effect.promise(() => rm(root, { recursive: true, force: true })))
      const tenant = join(root, "t1")
      for (let round = 0; round < 20; round++) {
        for (let account = 0; account < 50; account++) yield* writeJson(join(tenant, "accounts", `a${account}.json`), { round }, "t1")
        let saved = 0
        let stop = false
        // Stopped by a flag, not interrupted: an interrupted save's file operations would go on unseen.
        const writer = yield* Effect.forkChild(Effect.suspend(() =>
          writeJson(join(tenant, "accounts", `b${saved++ % 50}.json`), { round }, "t1").pipe(Effect.ignore)
        ).pipe(Effect.repeat({ until: () => stop })))
        const removed = yield* removePath(tenant, "t1")
        stop = true
        yield* Fiber.join(writer)
        assert.isTrue(removed)
        assert.isAbove(saved, 0)
      }
      // Files saved after the removal finished may be there again: the next round removes them too.
      yield* removePath(tenant, "t1")
      assert.deepStrictEqual(yield* Effect.promise(() => readdir(root)), [])
    }).pipe(Effect.scoped), 60_000)
})
