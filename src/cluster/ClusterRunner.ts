/**
 * One runner of a cluster (`run --cluster`, docs/scaling.md): joins effect/cluster over the shared PostgreSQL (runner
 * and shard-lock storage, SocketRunner between runners), registers a singleton per tenant (ClusterTenants), and runs
 * each tenant it owns as today's connector on a loopback port, with the flow's PBX writes going through the store's
 * desired commands (DesiredPresence). Its public port (RunnerFront) takes any request for any tenant.
 */
import { NodeClusterSocket } from "@effect/platform-node"
import { Clock, Context, Deferred, Effect, Layer, Option, Redacted, Schedule, Schema, SubscriptionRef } from "effect"
import type { ConnectorConfig } from "../config/Config.ts"
import { type ConnectorSettings, settingsFromConfig } from "../config/Settings.ts"
import { makeTenantServers, storedTenantConfig } from "../tenants/TenantRuntime.ts"
import { defaultTenant, StateStore, type StateStoreError, type TenantId } from "../state/StateStore.ts"
import { makePgClient } from "../state/postgres/PgStateStore.ts"
import { ClusterTenants, type TenantWork } from "./ClusterTenants.ts"
import { ClusterError, type ClusterSettings, shardingConfig } from "./ClusterSettings.ts"
import { describeCause } from "../state/StateStoreError.ts"
import { desiredPresenceWriter, DesiredWakeups } from "./DesiredPresence.ts"
import { TenantState } from "../state/TenantState.ts"
import { startRunnerFront } from "./RunnerFront.ts"
import { SqlClient } from "effect/sql"
import { PbxConnections, type PbxState } from "../pbx/socket/PbxConnections.ts"
import { type ClusterRunnerView, StatusBoard } from "../status/StatusBoard.ts"
import { authorized } from "../status/StatusRoutes.ts"
import { makeLoginBackoff } from "../domain/LoginBackoff.ts"
import { makeRunnerRegistry, publishInterval } from "./RunnerRegistry.ts"

export interface RunnerOptions {
  /** The configuration file: runner-wide settings (http, dataDir, log, security) and, unless `withDefault` is false, tenant `default`. */
  readonly config: ConnectorConfig
  readonly defaultSettings: ConnectorSettings
  readonly withDefault: boolean
  readonly cluster: ClusterSettings
  readonly adminPassword: Redacted.Redacted<string>
}

/** A tenant's connector inside a runner: a handoff is not a shutdown (nothing cleared or deleted). */
const asTenantRun = (settings: ConnectorSettings, adminPassword: Redacted.Redacted<string>): ConnectorSettings => ({
  ...settings,
  adminPassword: settings.adminPassword ?? adminPassword,
  flow: { ...settings.flow, clearOnShutdown: false },
  subscriptions: { ...settings.subscriptions, deleteOnShutdown: false }
})

const ClusterStatusRow = Schema.Struct({ address: Schema.String, healthy: Schema.Boolean, last_heartbeat: Schema.Unknown })
const OwnerRow = Schema.Struct({ tenant_id: Schema.String, runner: Schema.String, epoch: Schema.Unknown })

export const runRunner = Effect.fn("ClusterRunner.run")(function*(options: RunnerOptions) {
  const runnerId = options.cluster.advertise
  const store = yield* StateStore
  // The cluster's own pool: shard locks hold reserved connections for as long as the runner lives.
  const sql = yield* makePgClient({ maxConnections: 8 })
  const services = yield* Layer.build(
    Layer.mergeAll(DesiredWakeups.layer, NodeClusterSocket.layer({ shardingConfig: shardingConfig(options.cluster) })).pipe(
      Layer.provide(Layer.succeed(SqlClient.SqlClient, sql)),
      Layer.provide(Layer.succeed(StateStore, store))
    )
  ).pipe(Effect.mapError((error) =>
    new ClusterError({ message: `cannot join the cluster on ${options.cluster.listenHost}:${options.cluster.runnerPort}: ${describeCause(error)}` })
  ))
  const wakeups = Context.get(services, DesiredWakeups)
  const servers = yield* makeTenantServers(options.config.notifications.decryptWorkers)
  /** The connectors running here: their PBX sockets and status boards (the cluster view goes onto each). */
  const running = new Map<TenantId, { readonly pbxs: SubscriptionRef.SubscriptionRef<ReadonlyMap<string, PbxState>>; readonly board: StatusBoard["Service"] }>()
  const registry = yield* makeRunnerRegistry(sql, runnerId).pipe(
    Effect.mapError((error) => new ClusterError({ message: `cannot register the runner: ${describeCause(error)}` }))
  )

  const tenantSettings = Effect.fnUntraced(function*(tenant: TenantId) {
    if (tenant === defaultTenant && options.withDefault) return options.defaultSettings
    const stored = yield* store.tenants.get(tenant)
    if (Option.isNone(stored)) return yield* Effect.fail(new Error(`tenant ${tenant} is not in the store`))
    return yield* settingsFromConfig(storedTenantConfig(options.config, tenant, stored.value.config))
  })

  const work: TenantWork = (tenant, owner) =>
    Effect.gen(function*() {
      const settings = asTenantRun(yield* tenantSettings(tenant), options.adminPassword)
      const fenced = yield* Deferred.make<StateStoreError>()
      const flowWriter = desiredPresenceWriter(tenant, owner, fenced).pipe(
        Layer.provide(Layer.succeed(StateStore, store)),
        Layer.provide(Layer.succeed(DesiredWakeups, wakeups))
      )
      // The tenant's tokens, subscriptions and keys in the runner's store, under the tenant's own id.
      const state = TenantState.layer(tenant).pipe(Layer.provideMerge(Layer.succeed(StateStore, store)))
      const { context } = yield* servers.serve(tenant, settings, { flowWriter, state })
      running.set(tenant, { pbxs: Context.get(context, PbxConnections).states, board: Context.get(context, StatusBoard) })
      yield* Effect.addFinalizer(() => Effect.sync(() => running.delete(tenant)))
      yield* Deferred.await(fenced)
      yield* Effect.logWarning(`cluster: tenant ${tenant} is owned elsewhere now (fenced); stopping it here`)
    })

  const tenants = yield* Layer.build(ClusterTenants.layer({
    runnerId,
    fixed: options.withDefault ? [defaultTenant] : [],
    fromStore: true,
    work
  }).pipe(Layer.provide(Layer.succeed(StateStore, store)), Layer.provide(Layer.succeedContext(services))))
  const cluster = Context.get(tenants, ClusterTenants)

  // This runner's row for the status page, and the cluster's rows onto the page of every tenant running here.
  const publish = Effect.gen(function*() {
    const owned = yield* SubscriptionRef.get(cluster.owned)
    const pbxSockets: Array<ClusterRunnerView["pbxSockets"][number]> = []
    for (const [tenant, { pbxs }] of running) {
      for (const state of (yield* SubscriptionRef.get(pbxs)).values()) {
        if (state.connected) pbxSockets.push({ tenant, pbx: state.pbx, master: state.isMaster, loggedIn: state.loggedIn, since: state.connectedAt })
      }
    }
    yield* registry.publish({ tenants: [...owned].map(([tenant, o]) => ({ tenant, epoch: o.epoch, since: o.since })), pbxSockets })
    const view = yield* registry.view
    for (const { board } of running.values()) yield* board.update((snapshot) => ({ ...snapshot, cluster: view }))
  }).pipe(Effect.timeout("5 seconds"), Effect.ignore)
  yield* publish.pipe(Effect.repeat(Schedule.spaced(publishInterval)), Effect.forkScoped)
  yield* Effect.addFinalizer(() => registry.remove.pipe(Effect.timeout("2 seconds"), Effect.ignore))

  // /cluster/status: the admin password of the configuration file, wrong ones backing off per address as on the page.
  const backoff = makeLoginBackoff()
  const admit = (header: string | undefined, source: string) =>
    Effect.runPromise(Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (backoff.admit(source, now)._tag === "Refuse") return "refused" as const
      if (header === undefined) return "unauthorized" as const
      if (!authorized(header, options.adminPassword)) {
        const failure = backoff.fail(source, now)
        yield* Effect.logWarning(`cluster status: wrong admin password from ${source}`).pipe(Effect.annotateLogs({ logKey: `cluster-login:${source}` }))
        yield* Effect.sleep(failure.delayMillis)
        return "unauthorized" as const
      }
      backoff.succeed(source)
      return "ok" as const
    }))

  let stopping = false
  yield* Effect.addFinalizer(() => Effect.sync(() => { stopping = true }))
  const run = Effect.runPromise
  const front = yield* startRunnerFront({
    host: options.config.http.host,
    port: options.config.http.port,
    runnerId,
    defaultTenant: options.withDefault ? defaultTenant : undefined,
    local: servers.local,
    admit,
    known: (tenant) => run(Effect.map(cluster.registered, (ids) => ids.includes(tenant))),
    owner: (tenant) =>
      run(store.owners.get(tenant).pipe(
        Effect.map((owner) => Option.getOrUndefined(Option.map(owner, (o) => o.runner))),
        // A runner cut off from the database answers 503 at once rather than holding the request.
        Effect.timeout("2 seconds"),
        Effect.orElseSucceed(() => undefined)
      )),
    notReady: () =>
      run(Effect.gen(function*() {
        if (stopping) return "stopping"
        const reachable = yield* sql`SELECT 1`.pipe(Effect.timeout("2 seconds"), Effect.as(true), Effect.orElseSucceed(() => false))
        return reachable ? undefined : "the state database cannot be reached"
      })),
    status: () =>
      run(Effect.gen(function*() {
        const owned = yield* SubscriptionRef.get(cluster.owned)
        const runners = yield* sql`SELECT address, healthy, last_heartbeat FROM cluster_runners ORDER BY address`.pipe(
          Effect.flatMap(Schema.decodeUnknownEffect(Schema.Array(ClusterStatusRow))),
          Effect.orElseSucceed(() => [])
        )
        const owners = yield* sql`SELECT tenant_id, runner, epoch FROM tenant_owner ORDER BY tenant_id`.pipe(
          Effect.flatMap(Schema.decodeUnknownEffect(Schema.Array(OwnerRow))),
          Effect.orElseSucceed(() => [])
        )
        const view = yield* registry.view.pipe(Effect.timeout("2 seconds"), Effect.orElseSucceed(() => undefined))
        return {
          runner: runnerId,
          cluster: view?.runners ?? [],
          owned: [...owned].map(([id, o]) => ({ tenant: id, epoch: o.epoch, since: o.since })),
          local: servers.running(),
          runners: runners.map((r) => ({ address: r.address, healthy: r.healthy, lastHeartbeat: String(r.last_heartbeat) })),
          owners: owners.map((o) => ({ tenant: o.tenant_id, runner: o.runner, epoch: Number(o.epoch) }))
        }
      }))
  })
  yield* Effect.logInfo(`cluster runner ${runnerId} up: public port ${front.port}, runner port ${options.cluster.runnerPort} (${options.cluster.timing} timing)`)
  return front
})
