/**
 * The rich-notification key store (here in the files backend of the state store) when its file cannot be used: only a
 * missing file starts a new store; an unreadable or corrupt one is reported (with what to do) and left exactly as it
 * is — a silently regenerated key would break every existing rich subscription.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { CertificateStore } from "../../src/graph/notifications/crypto/CertificateStore.ts"
import { fileState } from "../support/state.ts"
import { makeTempDir } from "../support/tempDir.ts"

const tempDir = makeTempDir("tpc-keys-")
const keyFile = (dir: string) => path.join(dir, "rich-notification-keys.json")

/** The key store of tenant `default`, its state in the files of `dir`. */
const keyStoreIn = (dir: string) => CertificateStore.make().pipe(Effect.provide(fileState(dir)))

const withLogs = <A, E, R>(run: (lines: Array<string>) => Effect.Effect<A, E, R>) => {
  const lines: Array<string> = []
  const capture = Logger.make(({ logLevel, message }) =>
    void lines.push(`${logLevel}: ${Array.isArray(message) ? message.map(String).join(" ") : String(message)}`)
  )
  return run(lines).pipe(Effect.provide(Logger.layer([capture])))
}

describe("rich-notification key store", () => {
  it.effect("a missing file is a new store: a key is generated and written", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const store = yield* keyStoreIn(dir)
      assert.isUndefined(store.problem)
      const written = JSON.parse(yield* Effect.promise(() => fs.readFile(keyFile(dir), "utf8"))) as { currentId: string }
      assert.strictEqual(written.currentId, (yield* store.current).id)
    }).pipe(Effect.scoped))

  it.effect("a corrupt file: reported with the fix, never overwritten, no key generated", () =>
    withLogs((lines) =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        yield* Effect.promise(() => fs.writeFile(keyFile(dir), "{\"currentId\": \"tpc-1\", \"certificates\": [trunc"))
        const store = yield* keyStoreIn(dir)
        assert.match(store.problem!.message, /is not valid/)
        assert.match(store.problem!.fix, /Restore .* from a backup/)
        const error = yield* Effect.flip(store.current)
        assert.match(error.message, /is not valid/)
        assert.deepStrictEqual(yield* store.keys, [])
        assert.strictEqual(yield* Effect.promise(() => fs.readFile(keyFile(dir), "utf8")), "{\"currentId\": \"tpc-1\", \"certificates\": [trunc")
        assert.isTrue(lines.some((line) => line.startsWith("Error: rich notifications are off") && line.includes("Do not delete the stored keys")))
      }).pipe(Effect.scoped)
    ))

  it.effect("a file that cannot be read (here a directory in its place, which even root cannot read as a file)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* Effect.promise(() => fs.mkdir(keyFile(dir)))
      const store = yield* keyStoreIn(dir)
      assert.match(store.problem!.message, /cannot read the rich-notification key store: .*EISDIR/)
      assert.match(store.problem!.fix, /read and write access/)
      assert.isTrue((yield* Effect.promise(() => fs.stat(keyFile(dir)))).isDirectory())
      const rotated = yield* Effect.flip(store.rotate)
      assert.match(rotated.message, /cannot read/)
    }).pipe(Effect.scoped))

  it.effect("a file without read permission (unless running as root, which reads anyway)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* Effect.promise(() => fs.writeFile(keyFile(dir), "{}", { mode: 0o000 }))
      const store = yield* keyStoreIn(dir)
      // As root the file is readable: then "{}" is simply not a valid store. Either way nothing is regenerated.
      assert.match(store.problem!.message, process.getuid?.() === 0 ? /is not valid/ : /EACCES/)
      yield* Effect.promise(() => fs.chmod(keyFile(dir), 0o600))
      assert.strictEqual(yield* Effect.promise(() => fs.readFile(keyFile(dir), "utf8")), "{}")
    }).pipe(Effect.scoped))
})
