/** Row decoding and error mapping shared by the PostgreSQL store's tables. */
import { Effect, Schema, SchemaTransformation } from "effect"
import type { SqlError } from "effect/sql/SqlError"
import { describeCause, StateStoreError } from "../StateStoreError.ts"

/** A bigint column as a number (versions and epochs stay far below 2^53). */
export const Int64 = Schema.BigInt.pipe(
  Schema.decodeTo(Schema.Number, SchemaTransformation.transform({ decode: (n: bigint) => Number(n), encode: (n: number) => BigInt(n) }))
)

export const unavailable = (tenant?: string) => (error: SqlError) =>
  new StateStoreError({
    reason: "Unavailable",
    ...(tenant === undefined ? {} : { tenant }),
    message: `the state database failed (${describeCause(error)}): check that PostgreSQL is reachable`
  })

/**
 * One decoder per row schema, made on its first use: `decodeRows` runs with every statement, and a decoder made there
 * compiled the row's whole parser again each time (docs/performance.md, "cluster-3: the seventh round") — work and
 * short-lived caches that outlived a scavenge and were collected only by the next full collection.
 */
const decoders = new WeakMap<Schema.Top, (rows: unknown) => Effect.Effect<ReadonlyArray<unknown>, Schema.SchemaError>>()
const decoderOf = <S extends Schema.Top & { readonly DecodingServices: never }>(row: S) => {
  let decode = decoders.get(row)
  if (decode === undefined) {
    decode = Schema.decodeUnknownEffect(Schema.Array(row))
    decoders.set(row, decode)
  }
  return decode as (rows: unknown) => Effect.Effect<ReadonlyArray<S["Type"]>, Schema.SchemaError>
}

/** Decodes a query's rows with `row`; a row that does not decode is Corrupt, naming the table. */
export const decodeRows = <S extends Schema.Top & { readonly DecodingServices: never }>(row: S, table: string, tenant?: string) =>
  <R>(query: Effect.Effect<ReadonlyArray<unknown>, StateStoreError, R>): Effect.Effect<ReadonlyArray<S["Type"]>, StateStoreError, R> =>
    Effect.flatMap(query, (rows) =>
      decoderOf(row)(rows).pipe(
        Effect.mapError((error) =>
          new StateStoreError({
            reason: "Corrupt",
            ...(tenant === undefined ? {} : { tenant }),
            message: `a row of ${table} is not valid: ${describeCause(error)}`
          })
        )
      ))
