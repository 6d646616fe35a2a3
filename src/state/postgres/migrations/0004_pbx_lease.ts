/**
 * The lease of each PBX's socket (docs/scaling.md, "One writer per PBX"): the runner that accepted the PBX's login and
 * its epoch, which grows on every take. Kept when a tenant is removed, as tenant_owner is: epochs never go back.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE pbx_lease (
    tenant_id text NOT NULL,
    pbx text NOT NULL,
    runner text NOT NULL,
    epoch bigint NOT NULL,
    since timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, pbx)
  )`
})
