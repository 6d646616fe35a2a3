/**
 * decodeRows keeps one decoder per row schema (src/state/postgres/PgRows.ts): rows still decode through it on every
 * use, and a row that does not decode is still Corrupt naming the table and tenant of the statement that read it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { decodeRows, Int64 } from "../../src/state/postgres/PgRows.ts"
import { TenantId } from "../../src/state/Records.ts"

const Row = Schema.Struct({ guid: Schema.String, version: Int64 })

describe("decodeRows", () => {
  it.effect("decodes on every use and names each statement's table and tenant in a Corrupt error", () =>
    Effect.gen(function*() {
      const first = yield* decodeRows(Row, "pbx_desired")(Effect.succeed([{ guid: "a", version: 7n }]))
      assert.deepStrictEqual(first, [{ guid: "a", version: 7 }])
      const second = yield* decodeRows(Row, "pbx_desired")(Effect.succeed([{ guid: "b", version: 8n }, { guid: "c", version: 9n }]))
      assert.deepStrictEqual(second, [{ guid: "b", version: 8 }, { guid: "c", version: 9 }])
      const tenant = TenantId.make("alpha")
      const bad = yield* Effect.flip(decodeRows(Row, "pbx_lease", tenant)(Effect.succeed([{ guid: "d", version: "not a bigint" }])))
      assert.strictEqual(bad.reason, "Corrupt")
      assert.strictEqual(bad.tenant, "alpha")
      assert.include(bad.message, "a row of pbx_lease is not valid")
      const other = yield* Effect.flip(decodeRows(Row, "tenant_owner")(Effect.succeed([{ guid: 1, version: 1n }])))
      assert.include(other.message, "a row of tenant_owner is not valid")
      assert.isUndefined(other.tenant)
    }))
})
