/** The master PBX's user directory per tenant and PBX, published by the runner holding its socket (docs/scaling.md). */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE pbx_directory (
    tenant_id text NOT NULL,
    pbx text NOT NULL,
    record jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, pbx)
  )`
})
