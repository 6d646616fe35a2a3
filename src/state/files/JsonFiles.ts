/**
 * JSON files in the data directory as the connector has always written them: directories 0700, files 0600, written to
 * a temporary file, synced and renamed, so a crash never leaves half a file and other users never see one.
 */
import { Effect, Option } from "effect"
import { lstat, mkdir, open, readdir, readFile, rename, rm, unlink } from "node:fs/promises"
import { dirname } from "node:path"
import { describeCause, StateStoreError } from "../StateStoreError.ts"

const isMissing = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "code" in error && (error as { readonly code: unknown }).code === "ENOENT"

const unavailable = (action: string, path: string, tenant: string) => (cause: unknown) =>
  new StateStoreError({
    reason: "Unavailable",
    tenant,
    message: `could not ${action} ${path} (${describeCause(cause)}): check that the data directory exists and the connector's user may read and write it`
  })

/** The parsed content; None when the file does not exist. Unparsable JSON is Corrupt. */
export const readJson = Effect.fnUntraced(function*(file: string, tenant: string) {
  const text = yield* Effect.tryPromise({
    try: () => readFile(file, "utf8").then(Option.some<string>, (error) => (isMissing(error) ? Option.none<string>() : Promise.reject(error))),
    catch: unavailable("read", file, tenant)
  })
  if (Option.isNone(text)) return Option.none<unknown>()
  return yield* Effect.try({
    try: () => Option.some<unknown>(JSON.parse(text.value)),
    catch: () => new StateStoreError({ reason: "Corrupt", tenant, message: `${file} is not valid JSON: restore it from a backup` })
  })
})

export const writeJson = Effect.fnUntraced(function*(file: string, value: unknown, tenant: string) {
  const temporary = `${file}.${process.pid}.tmp`
  yield* Effect.tryPromise({
    try: async () => {
      await mkdir(dirname(file), { recursive: true, mode: 0o700 })
      const handle = await open(temporary, "w", 0o600)
      try {
        await handle.writeFile(JSON.stringify(value), "utf8")
        await handle.sync()
      } finally {
        await handle.close()
      }
      await rename(temporary, file)
    },
    catch: unavailable("write", file, tenant)
  }).pipe(Effect.tapError(() => Effect.promise(() => unlink(temporary).catch(() => undefined))))
})

/** Removes a file or a directory tree; true when something was there. */
export const removePath = Effect.fnUntraced(function*(path: string, tenant: string) {
  return yield* Effect.tryPromise({
    try: async () => {
      const existed = await lstat(path).then(() => true, (error) => (isMissing(error) ? false : Promise.reject(error)))
      // A tenant's work may still save a file into a directory being removed (it stops once the removal is read):
      // node retries the removal on ENOTEMPTY.
      if (existed) await rm(path, { recursive: true, force: true, maxRetries: 20, retryDelay: 10 })
      return existed
    },
    catch: unavailable("remove", path, tenant)
  })
})

/** The names in a directory; empty when it does not exist. */
export const listNames = Effect.fnUntraced(function*(dir: string, tenant: string) {
  return yield* Effect.tryPromise({
    try: (): Promise<Array<string>> => readdir(dir).catch((error) => (isMissing(error) ? [] : Promise.reject(error))),
    catch: unavailable("list", dir, tenant)
  })
})

export const ensureDir = Effect.fnUntraced(function*(dir: string, tenant: string) {
  yield* Effect.tryPromise({ try: () => mkdir(dir, { recursive: true, mode: 0o700 }), catch: unavailable("create", dir, tenant) })
})
