/**
 * The data directory holds secrets (refresh tokens, the notification keys, subscription clientStates, the generated
 * admin password). It is created with mode 0700 whichever way the connector starts, and the connector refuses to start
 * when the directory or anything in it is open to other users, saying which path and how to close it.
 */
import { mkdirSync, readdirSync, statSync } from "node:fs"
import { join } from "node:path"
import { Effect, Schema } from "effect"

export class DataDirError extends Schema.TaggedError<DataDirError>()("DataDirError", {
  path: Schema.String,
  problem: Schema.String,
  fix: Schema.String
}) {
  override get message(): string {
    return `The data directory is not private: ${this.path} ${this.problem}. ${this.fix}`
  }
}

const octal = (mode: number) => (mode & 0o777).toString(8).padStart(4, "0")

/** Permission bits for the group or others: none may be set on anything in the data directory. */
const openToOthers = (mode: number) => (mode & 0o077) !== 0

/** The first path under `dir` (itself included) that other users may access, depth first; `undefined` when none. */
const firstOpenPath = (dir: string, depth = 0): { path: string; mode: number; directory: boolean } | undefined => {
  const stat = statSync(dir)
  if (openToOthers(stat.mode)) return { path: dir, mode: stat.mode, directory: stat.isDirectory() }
  if (!stat.isDirectory() || depth > 4) return undefined
  for (const name of readdirSync(dir)) {
    const found = firstOpenPath(join(dir, name), depth + 1)
    if (found !== undefined) return found
  }
  return undefined
}

/** Creates the data directory (0700) when it is missing, then checks it and everything in it. */
export const prepareDataDir = Effect.fn("DataDir.prepare")(function*(dir: string) {
  return yield* Effect.try({
    try: () => {
      mkdirSync(dir, { recursive: true, mode: 0o700 })
      if (!statSync(dir).isDirectory()) return { path: dir, problem: "is not a directory", fix: "Point dataDir at a directory" }
      const open = firstOpenPath(dir)
      if (open === undefined) return undefined
      return {
        path: open.path,
        problem: `can be read by other users (mode ${octal(open.mode)})`,
        fix: `Run: chmod ${open.directory ? "700" : "600"} ${open.path}` +
          (open.path === dir ? ` (or chmod -R go-rwx ${dir} for everything in it)` : "")
      }
    },
    catch: (cause) =>
      new DataDirError({ path: dir, problem: `cannot be created or read (${String(cause)})`, fix: "Check dataDir and the service user's rights" })
  }).pipe(Effect.flatMap((problem) => (problem === undefined ? Effect.void : Effect.fail(new DataDirError(problem)))))
})
