/**
 * A database of its own for each test file, on the run's one PostgreSQL server (postgres.globalSetup.ts): files run
 * in parallel without sharing state, and the server is started once.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { randomUUID } from "node:crypto"
import { inject } from "vitest"

let database: Promise<string> | undefined
let server: Promise<string> | undefined

const serverUrl = (): Promise<string> => (server ??= askBroker())

const askBroker = async (): Promise<string> => {
  const response = await fetch(inject("postgresBroker"))
  if (!response.ok) throw new Error(await response.text())
  return ((await response.json()) as { url: string }).url
}

const createDatabase = async (): Promise<string> => {
  const server = await serverUrl()
  const name = `t_${randomUUID().replaceAll("-", "").slice(0, 20)}`
  await Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      yield* sql`CREATE DATABASE ${sql(name)}`
    }).pipe(Effect.provide(Layer.fresh(PgClient.layer({ url: Redacted.make(server), maxConnections: 1 }))))
  )
  const url = new URL(server)
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
  const base = await testDatabaseUrl()
  const schema = `s_${randomUUID().replaceAll("-", "").slice(0, 20)}`
  await Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      yield* sql`CREATE SCHEMA ${sql(schema)}`
    }).pipe(Effect.provide(Layer.fresh(PgClient.layer({ url: Redacted.make(base), maxConnections: 1 }))))
  )
  const url = new URL(base)
  url.searchParams.set("options", `-c search_path=${schema}`)
  return url.toString()
}

export const testDatabase = Effect.promise(testDatabaseUrl)

/** A client on this file's database, for reading tables directly in assertions. */
export const testSql = Layer.unwrap(
  testDatabase.pipe(Effect.map((url) => PgClient.layer({ url: Redacted.make(url), maxConnections: 4 })))
)
