/**
 * A database of its own for each test file, on the run's one PostgreSQL server (postgres.globalSetup.ts), and a schema
 * of its own for each test that wants an empty store: files run in parallel without sharing state, and the server is
 * started once.
 */
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Redacted } from "effect"
import { randomUUID } from "node:crypto"
import { inject } from "vitest"

let server: Promise<string> | undefined
let database: Promise<string> | undefined

const askBroker = async (): Promise<string> => {
  const response = await fetch(inject("postgresBroker"))
  if (!response.ok) throw new Error(await response.text())
  return ((await response.json()) as { url: string }).url
}

const serverUrl = (): Promise<string> => (server ??= askBroker())

const uniqueName = (prefix: string) => `${prefix}_${randomUUID().replaceAll("-", "").slice(0, 20)}`

/** Runs one statement naming `identifier` (CREATE DATABASE / SCHEMA) on a short-lived connection. */
const create = (url: string, kind: "DATABASE" | "SCHEMA", identifier: string) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      yield* sql`CREATE ${sql.literal(kind)} ${sql(identifier)}`
    }).pipe(Effect.provide(Layer.fresh(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 }))))
  )

const createDatabase = async (): Promise<string> => {
  const url = new URL(await serverUrl())
  const name = uniqueName("t")
  await create(url.toString(), "DATABASE", name)
  url.pathname = `/${name}`
  return url.toString()
}

/** The URL of this test file's database (created on first use). */
export const testDatabaseUrl = (): Promise<string> => (database ??= createDatabase())

/**
 * A URL on this file's database whose tables land in a schema of their own (search_path in the connection options):
 * an empty store for one test, for a few milliseconds instead of a CREATE DATABASE. Notification channels are shared
 * by the whole database; the tests of a file run one after the other.
 */
export const newSchemaUrl = async (): Promise<string> => {
  const url = new URL(await testDatabaseUrl())
  const schema = uniqueName("s")
  await create(url.toString(), "SCHEMA", schema)
  url.searchParams.set("options", `-c search_path=${schema}`)
  return url.toString()
}

/**
 * Waits (in real time, whatever the test's clock) until a session of the database listens on `channel`: a LISTEN
 * opens its session apart from the pool, after a connect, so a NOTIFY sent before it is not heard, and a TestClock
 * moved while that connect is under way fires its timeout.
 */
export const awaitListening = (url: string, channel: string) =>
  Effect.scoped(Effect.gen(function*() {
    const context = yield* Layer.build(Layer.fresh(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })))
    const sql = Context.get(context, PgClient.PgClient)
    const listening = sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE query = ${`LISTEN "${channel}"`} AND state = 'idle'`.pipe(Effect.map((rows) => rows[0]!.n > 0), Effect.orDie)
    while (!(yield* listening)) yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
  }))
