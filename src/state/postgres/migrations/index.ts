/**
 * The schema's migrations, in order; run at every start-up. The migrator locks its table, so several processes
 * starting at once run each migration exactly once. A new migration is a new module here, never an edit of an old one.
 */
import * as Migrator from "effect/sql/Migrator"
import initial from "./0001_initial.ts"
import presenceSessions from "./0002_presence_sessions.ts"
import pbxDirectory from "./0003_pbx_directory.ts"
import pbxLease from "./0004_pbx_lease.ts"

export const migrationsTable = "connector_migrations"

export const migrate = Migrator.make({})({
  table: migrationsTable,
  loader: Migrator.fromRecord({
    "1_initial": initial,
    "2_presence_sessions": presenceSessions,
    "3_pbx_directory": pbxDirectory,
    "4_pbx_lease": pbxLease
  })
})
