/**
 * One runner of a cluster (`run --cluster`, docs/scaling.md): joins effect/cluster over the shared PostgreSQL (runner
 * and shard-lock storage, SocketRunner between runners), registers a singleton per tenant (ClusterTenants), and runs
 * each tenant it owns as today's connector on a loopback port, with the flow's PBX writes going through the store's
 * desired commands (DesiredPresence). Its public port (RunnerFront) takes any request for any tenant; Graph's
 * notifications for a tenant it does not serve are handed to the owner through the store (GraphHandoff).
 */
import { NodeClusterSocket } from "@effect/platform-node"
import { Clock, Context, Deferred, Effect, Layer, Option, Redacted, Schedule, SubscriptionRef } from "effect"
import { SqlClient } from "effect/sql"
import type { ConnectorConfig } from "../config/Config.ts"
import { type ConnectorSettings, settingsFromConfig } from "../config/Settings.ts"
import { logRejected, NotificationsInbox } from "../graph/notifications/NotificationsInbox.ts"
import { PbxConnections, type PbxState } from "../pbx/socket/PbxConnections.ts"
import { makePgClient } from "../state/postgres/PgStateStore.ts"
import { defaultTenant, StateStore, type StateStoreError, type TenantId } from "../state/StateStore.ts"
import { describeCause } from "../state/StateStoreError.ts"
import { TenantState } from "../state/TenantState.ts"
import { type ClusterView, StatusBoard } from "../status/StatusBoard.ts"
import { makeTenantServers, storedTenantConfig, type TenantServers } from "../tenants/TenantRuntime.ts"
import { ClusterError, type ClusterSettings, shardingConfig } from "./ClusterSettings.ts"
import { ClusterTenants, type TenantWork } from "./ClusterTenants.ts"
import { desiredPresenceWriter, DesiredWakeups } from "./DesiredPresence.ts"
import { directoryViaStore, storeDirectory } from "./StoreDirectory.ts"
import { makePbxSides, type PbxSides } from "./PbxSide.ts"
import { clusterPbxStates, connectedPbxs, socketRows } from "./PbxSocketView.ts"
import type { GraphIngress, GraphPaths } from "./FrontGraph.ts"
import { recordStage } from "./StageTimings.ts"
import { type GraphHandoff, makeGraphHandoff } from "./GraphHandoff.ts"
import { makeHandoffIntake } from "./HandoffIntake.ts"
import { makeTenantCache } from "./TenantCache.ts"
import { makeOwnerRoute } from "./OwnerRoute.ts"
import { makeRunnerRegistry, publishInterval } from "./RunnerRegistry.ts"
import { type SocketMode, socketModeOf } from "./SocketMode.ts"
import { startRunnerFront } from "./RunnerFront.ts"
import { serveRunnerProcessRoutes } from "./RunnerProcessRoutes.ts"
import { defaultBackoffPolicy } from "../domain/LoginBackoff.ts"
import { clusterStatus, makeAdmit, notReady, type RunnerParts } from "./RunnerStatus.ts"

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
  providerPassword: adminPassword,
  flow: { ...settings.flow, clearOnShutdown: false },
  subscriptions: { ...settings.subscriptions, deleteOnShutdown: false }
})

/** The connectors running here: their PBX sockets' mode and states, and status boards (the cluster view goes onto each). */
type Running = Map<TenantId, {
  readonly mode: SocketMode
  readonly pbxs: SubscriptionRef.SubscriptionRef<ReadonlyMap<string, PbxState>>
  readonly board: StatusBoard["Service"]
}>

/** effect/cluster over the runner's own pool (shard locks hold reserved connections for as long as the runner lives). */
const joinCluster = Effect.fnUntraced(function*(cluster: ClusterSettings, store: StateStore["Service"]) {
  const sql = yield* makePgClient({ maxConnections: 8 })
  const services = yield* Layer.build(
    Layer.mergeAll(DesiredWakeups.layer([cluster.advertise]), NodeClusterSocket.layer({ shardingConfig: shardingConfig(cluster) })).pipe(
      Layer.provide(Layer.succeed(SqlClient.SqlClient, sql)),
      Layer.provide(Layer.succeed(StateStore, store))
    )
  ).pipe(Effect.mapError((error) =>
    new ClusterError({ message: `cannot join the cluster on ${cluster.listenHost}:${cluster.runnerPort}: ${describeCause(error)}` })
  ))
  // A pool of its own for the handed-over notifications, so that their traffic never holds up a shard-lock refresh.
  const handoffSql = yield* makePgClient({ maxConnections: 4 })
  const handoff = yield* makeGraphHandoff(handoffSql).pipe(
    Effect.mapError((error) => new ClusterError({ message: `cannot prepare the notification handoff: ${describeCause(error)}` }))
  )
  return { sql, services, handoff }
})

/** A tenant's settings: tenant `default` from the configuration file, the others from the store. */
const tenantSettingsOf = (options: RunnerOptions, store: StateStore["Service"]) =>
  Effect.fnUntraced(function*(tenant: TenantId) {
    if (tenant === defaultTenant && options.withDefault) return options.defaultSettings
    const stored = yield* store.tenants.get(tenant)
    if (Option.isNone(stored)) return yield* Effect.fail(new Error(`tenant ${tenant} is not in the store`))
    return yield* settingsFromConfig(storedTenantConfig(options.config, tenant, stored.value.config))
  })

/** Where a tenant's PBX sockets are served now, from its settings as stored (SocketMode.ts). */
const socketModeFor = (options: RunnerOptions, store: StateStore["Service"]) => {
  const settingsOf = tenantSettingsOf(options, store)
  return (tenant: TenantId) =>
    settingsOf(tenant).pipe(Effect.map((settings) => socketModeOf(settings, options.cluster.pbxSockets).mode), Effect.timeout("2 seconds"))
}

interface WorkParts {
  readonly options: RunnerOptions
  readonly store: StateStore["Service"]
  readonly services: Context.Context<DesiredWakeups>
  readonly handoff: GraphHandoff
  readonly servers: TenantServers
  readonly running: Running
  /** Tenants whose connector here takes Graph's notifications directly (its handed-over ones taken first). */
  readonly direct: Map<TenantId, number>
  /** The PBX sides of this runner (unless `pbxSockets: owner`): the PBX sockets reaching it of every tenant in mode `any`. */
  readonly sides: PbxSides | undefined
  /** The cluster's rows as last read (every `publishInterval`). */
  view: ClusterView | undefined
}

/** What was handed over for the tenant while it had no owner, before its connector takes notifications directly. */
const takeHandedOver = (handoff: GraphHandoff, tenant: TenantId, epoch: number, inbox: NotificationsInbox["Service"]) =>
  handoff.drainOnce(tenant, epoch, inbox).pipe(
    Effect.timeout("10 seconds"),
    Effect.tapCause((cause) => Effect.logWarning(`cluster: handed-over notifications of ${tenant} not taken at start`, cause)),
    Effect.orElseSucceed(() => 0),
    Effect.tap((taken) => taken > 0 ? Effect.logInfo(`cluster: ${taken} notification batches of ${tenant} taken over from the store`) : Effect.void)
  )

/**
 * A tenant owned here: today's connector on a loopback port, its PBX writes through the store. What other runners
 * handed over while the tenant was between owners goes to its inbox before it takes notifications directly.
 */
const tenantWork = (parts: WorkParts): TenantWork => {
  const settingsOf = tenantSettingsOf(parts.options, parts.store)
  return (tenant, owner) =>
    Effect.gen(function*() {
      const settings = asTenantRun(yield* settingsOf(tenant), parts.options.adminPassword)
      const fenced = yield* Deferred.make<StateStoreError>()
      const { mode, why } = socketModeOf(settings, parts.options.cluster.pbxSockets)
      yield* Effect.logInfo(`cluster: tenant ${tenant} starts with its PBX sockets ${
        mode === "owner" ? "piped to its owner and held by its connector (mode owner)" : "on the runners they reach (mode any)"
      }: ${why}`)
      const sides = mode === "any" ? parts.sides : undefined
      const cluster = sides === undefined ? undefined : {
        connected: Effect.map(sides.states, (own) => connectedPbxs(tenant, parts.view, own.get(tenant)))
      }
      // In mode `any` the connector holds no PBX socket: it only reads the user table the master's side publishes. In
      // mode `owner` it holds them, publishes the master's table itself and sends its own PBX writes.
      const pbxDirectory = sides === undefined ? directoryViaStore(tenant, parts.options.cluster.advertise) : storeDirectory(tenant)
      const flowWriter = desiredPresenceWriter(tenant, owner, fenced, cluster).pipe(
        Layer.provide(Layer.succeed(StateStore, parts.store)),
        Layer.provide(Layer.succeedContext(parts.services))
      )
      // The tenant's tokens, subscriptions and keys in the runner's store, under the tenant's own id.
      const state = TenantState.layer(tenant).pipe(Layer.provideMerge(Layer.succeed(StateStore, parts.store)))
      const { context, port } = yield* parts.servers.serve(tenant, settings, { flowWriter, state, pbxDirectory })
      parts.running.set(tenant, { mode, pbxs: Context.get(context, PbxConnections).states, board: Context.get(context, StatusBoard) })
      yield* Effect.addFinalizer(() => Effect.sync(() => parts.running.delete(tenant)))
      // A connector in poll mode has no inbox (and no webhook).
      const inbox = Context.getOrUndefined(context, NotificationsInbox)
      if (inbox !== undefined) yield* takeHandedOver(parts.handoff, tenant, owner.epoch, inbox)
      parts.direct.set(tenant, port)
      yield* Effect.addFinalizer(() => Effect.sync(() => parts.direct.delete(tenant)))
      if (inbox !== undefined) yield* parts.handoff.drain(tenant, owner.epoch, inbox)
      yield* Deferred.await(fenced)
      yield* Effect.logWarning(`cluster: tenant ${tenant} is owned elsewhere now (fenced); stopping it here`)
    })
}

/** A tenant's webhook paths are read again when its stored tenant changed, or after this long (a missed change). */
const pathsFor = 300_000

/** Graph's webhooks on the public port: any tenant's notifications are taken here (FrontGraph.ts). */
const graphIngress = Effect.fnUntraced(function*(parts: WorkParts) {
  const settingsOf = tenantSettingsOf(parts.options, parts.store)
  const intake = makeHandoffIntake(parts.store, parts.handoff)
  const paths = makeTenantCache((tenant: TenantId) =>
    settingsOf(tenant).pipe(
      Effect.map(({ subscriptions: s }): GraphPaths | undefined =>
        s.mode === "push" ? { notificationPath: s.notificationPath, lifecyclePath: s.lifecyclePath, maxBodyBytes: s.maxBodyBytes } : undefined
      ),
      Effect.timeout("2 seconds")
    ), pathsFor)
  yield* paths.follow(parts.store.tenants.changes).pipe(Effect.retry(Schedule.spaced("2 seconds")), Effect.forkScoped)
  // The owner's runner from the runners' rows (read every 3 s anyway): a POST not served here goes there first.
  const route = makeOwnerRoute(parts.options.cluster.advertise, () => parts.view, () => Effect.runSync(Clock.currentTimeMillis))
  return {
    paths: (tenant) => Effect.runPromise(paths.get(tenant)),
    direct: (tenant) => parts.direct.get(tenant),
    owner: route.owner,
    ownerFailed: route.ownerFailed,
    receive: (tenant, kind, json) => Effect.runPromise(intake.receive(tenant, kind, json)),
    timed: (path, millis) => Effect.runSync(recordStage(path, millis)),
    refused: (tenant, reason, message) => Effect.runFork(logRejected(reason, message, { tenant }))
  } satisfies GraphIngress
})

/**
 * This runner's row for the status page, and the cluster's rows onto the page of every tenant running here; with PBX
 * sides, each tenant's PBX states as the cluster holds them go onto its connector's registry (its PBX lights).
 */
const publishRows = (parts: RunnerParts, work: WorkParts) =>
  Effect.gen(function*() {
    const owned = yield* SubscriptionRef.get(parts.cluster.owned)
    const held = new Map<TenantId, ReadonlyMap<string, PbxState>>(work.sides === undefined ? [] : yield* work.sides.states)
    for (const [tenant, { mode, pbxs }] of work.running) if (mode === "owner") held.set(tenant, yield* SubscriptionRef.get(pbxs))
    const tenants = [...owned].map(([tenant, o]) => ({ tenant, epoch: o.epoch, since: o.since, sockets: work.running.get(tenant)?.mode }))
    yield* parts.registry.publish({ tenants, pbxSockets: socketRows(held) })
    const view = yield* parts.registry.view
    work.view = view
    for (const [tenant, { board, mode, pbxs }] of work.running) {
      yield* board.update((snapshot) => ({ ...snapshot, cluster: view }))
      if (mode === "any") yield* SubscriptionRef.set(pbxs, clusterPbxStates(tenant, view, held.get(tenant)))
    }
  }).pipe(Effect.timeout("5 seconds"), Effect.ignore)

/** Node's default: a client kept on a runner that stopped being ready (cut off, stopping) reconnects within 5 s. */
const clusterKeepAliveMillis = 5_000

export const runRunner = Effect.fn("ClusterRunner.run")(function*(options: RunnerOptions) {
  const runnerId = options.cluster.advertise
  const store = yield* StateStore
  const { sql, services, handoff } = yield* joinCluster(options.cluster, store)
  const servers = yield* makeTenantServers(options.config.notifications.decryptWorkers, options.config.notifications.decryptWorkerNice)
  const socketMode = socketModeFor(options, store)
  const sides = options.cluster.pbxSockets === "owner" ? undefined : yield* makePbxSides({
    runner: runnerId,
    settingsOf: tenantSettingsOf(options, store),
    socketMode,
    tenantChanges: store.tenants.changes,
    services: Context.add(services, StateStore, store),
    reachable: sql`SELECT 1`.pipe(Effect.timeout("2 seconds"), Effect.as(true), Effect.orElseSucceed(() => false))
  })
  const work: WorkParts = { options, store, services, handoff, servers, running: new Map(), direct: new Map(), sides, view: undefined }
  const registry = yield* makeRunnerRegistry(sql, runnerId).pipe(
    Effect.mapError((error) => new ClusterError({ message: `cannot register the runner: ${describeCause(error)}` }))
  )
  const tenants = yield* Layer.build(ClusterTenants.layer({
    runnerId,
    fixed: options.withDefault ? [defaultTenant] : [],
    fromStore: true,
    work: tenantWork(work)
  }).pipe(Layer.provide(Layer.succeed(StateStore, store)), Layer.provide(Layer.succeedContext(services))))
  const parts: RunnerParts = { runnerId, sql, cluster: Context.get(tenants, ClusterTenants), registry, servers }

  yield* publishRows(parts, work).pipe(Effect.repeat(Schedule.spaced(publishInterval)), Effect.forkScoped)
  yield* Effect.addFinalizer(() => registry.remove.pipe(Effect.timeout("2 seconds"), Effect.ignore))
  let stopping = false
  yield* Effect.addFinalizer(() => Effect.sync(() => { stopping = true }))
  const run = Effect.runPromise
  const processRoutes = yield* serveRunnerProcessRoutes({
    runner: runnerId,
    adminPassword: options.adminPassword,
    loginBackoff: options.defaultSettings.statusPage?.loginBackoff ?? defaultBackoffPolicy,
    store,
    owned: parts.cluster.owned,
    servers
  })
  const front = yield* startRunnerFront({
    processRoutes,
    keepAliveTimeout: clusterKeepAliveMillis,
    host: options.config.http.host,
    port: options.config.http.port,
    runnerId,
    defaultTenant: options.withDefault ? defaultTenant : undefined,
    local: servers.local,
    admit: makeAdmit(options.adminPassword),
    known: (tenant) => run(Effect.map(parts.cluster.registered, (ids) => ids.includes(tenant))),
    owner: (tenant) =>
      run(store.owners.get(tenant).pipe(
        Effect.map((owner) => Option.getOrUndefined(Option.map(owner, (o) => o.runner))),
        // A runner cut off from the database answers 503 at once rather than holding the request.
        Effect.timeout("2 seconds"),
        Effect.orElseSucceed(() => undefined)
      )),
    notReady: () => run(notReady(parts, () => stopping)),
    status: () => run(clusterStatus(parts)),
    graph: yield* graphIngress(work),
    pbxSides: sides,
    // A tenant whose settings cannot be read is given to its PBX side, which cannot start either and refuses it.
    socketMode: (tenant) => run(socketMode(tenant).pipe(Effect.orElseSucceed(() => "any" as const)))
  })
  yield* Effect.logInfo(`cluster runner ${runnerId} up: public port ${front.port}, runner port ${options.cluster.runnerPort} (${options.cluster.timing} timing)`)
  return front
})
