/**
 * The tenants' overview of a process (`GET /api/tenants/status`, the page `/tenants/`): one row per tenant — its
 * supervisor state (running, starting, failed with the reason), its three main lights, its counts and its last
 * error — read from each running tenant's status board. Nothing in it is secret: the lights and errors are the
 * status page's own words, which never hold a secret.
 */
import { Clock, Context, Effect, Schema } from "effect"
import type { TenantId } from "../state/Records.ts"
import { StatusBoard, type Light, type StatusSnapshot } from "../status/StatusBoard.ts"
import type { TenantRunState } from "./TenantSupervisor.ts"
import { tenantPrefix, type TenantServers } from "./TenantRuntime.ts"

const OverviewLight = Schema.Struct({ state: Schema.Literals(["green", "amber", "red"]), reason: Schema.String })

export const TenantOverviewRow = Schema.Struct({
  id: Schema.String,
  /** The tenant's own status page on the public port. */
  page: Schema.String,
  state: Schema.Literals(["running", "starting", "failed"]),
  /** Why the tenant failed (the supervisor starts it again after a pause), and how often in a row. */
  error: Schema.optional(Schema.String),
  failures: Schema.optional(Schema.Number),
  lights: Schema.optional(Schema.Struct({ masterPbx: OverviewLight, authentication: OverviewLight, presenceSubscription: OverviewLight })),
  counts: Schema.optional(Schema.Struct({
    teamsUsers: Schema.Number,
    pbxUsers: Schema.Number,
    matched: Schema.Number,
    /** Matched users whose presence the PBX has confirmed at least once. */
    written: Schema.Number
  })),
  lastError: Schema.optional(Schema.Struct({ at: Schema.Number, level: Schema.String, message: Schema.String }))
})
export type TenantOverviewRow = typeof TenantOverviewRow.Type

export const TenantsOverview = Schema.Struct({
  now: Schema.Number,
  /** A cluster runner's overview: the runner (its id), whose owned tenants are the rows. */
  runner: Schema.optional(Schema.String),
  tenants: Schema.Array(TenantOverviewRow)
})
export type TenantsOverview = typeof TenantsOverview.Type

const light = (l: Light) => ({ state: l.state, reason: l.reason })

/** What a running tenant's board shows on the overview. */
export const boardRow = (snapshot: StatusSnapshot) => {
  const last = snapshot.errors.at(-1)
  return {
    lights: {
      masterPbx: light(snapshot.lights.masterPbx),
      authentication: light(snapshot.lights.authentication),
      presenceSubscription: light(snapshot.lights.presenceSubscription)
    },
    counts: {
      teamsUsers: snapshot.counts.teamsUsers,
      pbxUsers: snapshot.counts.pbxUsers,
      matched: snapshot.counts.matched,
      written: snapshot.users.filter((user) => user.written !== "—").length
    },
    ...(last !== undefined ? { lastError: { at: last.at, level: last.level, message: last.message } } : {})
  }
}

/** One row per tenant: `always` first (tenant default, served whatever the store says), then the supervised ones by id. */
export const tenantsOverview = Effect.fn("TenantsOverview.read")(function*(
  always: ReadonlyArray<TenantId>,
  supervised: ReadonlyMap<TenantId, TenantRunState>,
  servers: TenantServers
) {
  const ids = [...always, ...[...supervised.keys()].filter((id) => !always.includes(id)).sort()]
  const tenants = yield* Effect.forEach(ids, (id) =>
    Effect.gen(function*() {
      const page = `${tenantPrefix(id)}/`
      const run = supervised.get(id)
      if (run?.state === "failed") return { id, page, state: "failed" as const, error: run.error, failures: run.failures }
      const context = servers.context(id)
      if (context === undefined) return { id, page, state: "starting" as const }
      const snapshot = yield* Context.get(context, StatusBoard).get
      return { id, page, state: "running" as const, ...boardRow(snapshot) }
    }))
  return { now: yield* Clock.currentTimeMillis, tenants } satisfies TenantsOverview
})
