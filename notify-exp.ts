import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Queue, Redacted } from "effect"
import { startTestPostgres } from "./test/support/postgresServer.ts"

const pg = await startTestPostgres()
const program = Effect.gen(function*() {
  const sql = Context.get(yield* Layer.build(PgClient.layer({ url: Redacted.make(pg.url), maxConnections: 10 })), PgClient.PgClient)
  const other = Context.get(yield* Layer.build(PgClient.layer({ url: Redacted.make(pg.url), maxConnections: 4 })), PgClient.PgClient)
  const listeners = yield* Effect.forEach([1, 2, 3], () => sql.listen("chan"))
  const lat: Array<number> = []
  yield* Queue.take(listeners[0]!).pipe(Effect.map((n) => lat.push(Date.now() - Number(n.payload))), Effect.forever, Effect.forkScoped)
  for (const q of listeners.slice(1)) yield* Queue.take(q).pipe(Effect.forever, Effect.forkScoped)
  const load = process.env["LOAD"] ?? "none"
  // Queries on the listener's own pool, as a runner's senders and owners make them.
  if (load !== "none") for (let i = 0; i < 20; i++) yield* sql`SELECT count(*) FROM generate_series(1, 2000)`.pipe(Effect.forever, Effect.forkScoped)
  const start = Date.now()
  let k = 0
  while (Date.now() - start < 8_000) {
    k++
    yield* Effect.forkScoped(other`SELECT pg_notify('chan', (extract(epoch FROM clock_timestamp()) * 1000)::bigint::text)`)
    yield* Effect.sleep(10)
  }
  yield* Effect.sleep(1000)
  lat.sort((a, b) => a - b)
  console.log(load, JSON.stringify({ sent: k, got: lat.length, p50: lat[Math.floor(lat.length * 0.5)], p90: lat[Math.floor(lat.length * 0.9)], p99: lat[Math.floor(lat.length * 0.99)], max: lat.at(-1) }))
})
await Effect.runPromise(Effect.scoped(program))
await pg.stop()
process.exit(0)
