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

/** Decodes a query's rows with `row`; a row that does not decode is Corrupt, naming the table. */
export const decodeRows = <S extends Schema.Top & { readonly DecodingServices: never }>(row: S, table: string, tenant?: string) =>
  <R>(query: Effect.Effect<ReadonlyArray<unknown>, StateStoreError, R>): Effect.Effect<ReadonlyArray<S["Type"]>, StateStoreError, R> =>
    Effect.flatMap(query, (rows) =>
      Schema.decodeUnknownEffect(Schema.Array(row))(rows).pipe(
        Effect.mapError((error) =>
          new StateStoreError({
            reason: "Corrupt",
            ...(tenant === undefined ? {} : { tenant }),
            message: `a row of ${table} is not valid: ${describeCause(error)}`
          })
        )
      ))
