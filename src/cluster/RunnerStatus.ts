/**
 * A runner's own routes beside its tenants' (docs/scaling.md): `/cluster/status` behind the admin password of the
 * configuration file — wrong passwords backing off per address as on the status page — and `/readyz`'s answer: a
 * runner takes traffic once it has read the store's tenants, while the database answers and until it stops.
 */
import { Clock, Effect, type Redacted, Schema, SubscriptionRef } from "effect"
import type { SqlClient } from "effect/sql"
import { makeLoginBackoff } from "../domain/LoginBackoff.ts"
import { authorized } from "../status/StatusRoutes.ts"
import type { TenantServers } from "../tenants/TenantRuntime.ts"
import type { ClusterTenants } from "./ClusterTenants.ts"
import type { makeRunnerRegistry } from "./RunnerRegistry.ts"

const ClusterStatusRow = Schema.Struct({ address: Schema.String, healthy: Schema.Boolean, last_heartbeat: Schema.Unknown })
const OwnerRow = Schema.Struct({ tenant_id: Schema.String, runner: Schema.String, epoch: Schema.Unknown })

/** The admin password check of `/cluster/status`. */
export const makeAdmit = (adminPassword: Redacted.Redacted<string>) => {
  const backoff = makeLoginBackoff()
  return (header: string | undefined, source: string) =>
    Effect.runPromise(Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (backoff.admit(source, now)._tag === "Refuse") return "refused" as const
      if (header === undefined) return "unauthorized" as const
      if (!authorized(header, adminPassword)) {
        const failure = backoff.fail(source, now)
        yield* Effect.logWarning(`cluster status: wrong admin password from ${source}`).pipe(Effect.annotateLogs({ logKey: `cluster-login:${source}` }))
        yield* Effect.sleep(failure.delayMillis)
        return "unauthorized" as const
      }
      backoff.succeed(source)
      return "ok" as const
    }))
}

export interface RunnerParts {
  readonly runnerId: string
  readonly sql: SqlClient.SqlClient
  readonly cluster: ClusterTenants["Service"]
  readonly registry: Effect.Success<ReturnType<typeof makeRunnerRegistry>>
  readonly servers: TenantServers
}

/** Why the runner cannot take traffic, or undefined when it can. */
export const notReady = (parts: RunnerParts, stopping: () => boolean): Effect.Effect<string | undefined> =>
  Effect.gen(function*() {
    if (stopping()) return "stopping"
    if (!(yield* parts.cluster.tenantsRead)) return "the tenants have not been read from the state store yet"
    const reachable = yield* parts.sql`SELECT 1`.pipe(Effect.timeout("2 seconds"), Effect.as(true), Effect.orElseSucceed(() => false))
    return reachable ? undefined : "the state database cannot be reached"
  })

/** `/cluster/status`: the runners, the owner records, what this runner owns and runs. */
export const clusterStatus = (parts: RunnerParts) =>
  Effect.gen(function*() {
    const { sql } = parts
    const owned = yield* SubscriptionRef.get(parts.cluster.owned)
    const runners = yield* sql`SELECT address, healthy, last_heartbeat FROM cluster_runners ORDER BY address`.pipe(
      Effect.flatMap(Schema.decodeUnknownEffect(Schema.Array(ClusterStatusRow))),
      Effect.orElseSucceed(() => [])
    )
    const owners = yield* sql`SELECT tenant_id, runner, epoch FROM tenant_owner ORDER BY tenant_id`.pipe(
      Effect.flatMap(Schema.decodeUnknownEffect(Schema.Array(OwnerRow))),
      Effect.orElseSucceed(() => [])
    )
    const view = yield* parts.registry.view.pipe(Effect.timeout("2 seconds"), Effect.orElseSucceed(() => undefined))
    return {
      runner: parts.runnerId,
      cluster: view?.runners ?? [],
      owned: [...owned].map(([id, o]) => ({ tenant: id, epoch: o.epoch, since: o.since })),
      local: parts.servers.running(),
      runners: runners.map((r) => ({ address: r.address, healthy: r.healthy, lastHeartbeat: String(r.last_heartbeat) })),
      owners: owners.map((o) => ({ tenant: o.tenant_id, runner: o.runner, epoch: Number(o.epoch) }))
    }
  })
