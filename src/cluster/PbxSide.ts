/**
 * A runner's PBX side per tenant (docs/scaling.md, "PBX sockets on any runner"): a PBX's websocket stays on the
 * runner it reaches, owner or not. The runner serves it with the tenant's PBX settings from the store on a loopback
 * server of its own: the AppWebsocket login and message loop (PbxAppService), the connection registry, the master's
 * user table replicated and published to the store (StoreDirectory.ts) when the master is here and read from the store
 * for the writer's routing, and the sender half of
 * the desired commands (DesiredPresence.ts): what the PBXs connected here have not confirmed goes out through the real
 * PresenceWriter (routing to the user's `loc` PBX, coalescing, retries) and is confirmed in the store.
 *
 * A tenant's side starts with its first websocket here and stops `idleStop` after its last one closed, or when the
 * tenant's configuration, updated, needs its sockets in its owner's connector (SocketMode.ts): its sockets close, and
 * the PBXs reconnect to the owner.
 */
import { Clock, Context, Effect, Exit, Layer, Metric, Schedule, Scope, Stream, SubscriptionRef } from "effect"
import { HttpServer } from "effect/http"
import type { ConnectorSettings } from "../config/Settings.ts"
import { serveRoutes } from "../http/Server.ts"
import { pbxServices } from "../pbx/PbxLayer.ts"
import { PbxSettings } from "../pbx/PbxSettings.ts"
import { PbxAppService } from "../pbx/socket/PbxAppService.ts"
import { PbxConnections, type PbxState } from "../pbx/socket/PbxConnections.ts"
import { StateStore, type TenantChange, type TenantId } from "../state/StateStore.ts"
import { describeCause } from "../state/StateStoreError.ts"
import { DesiredWakeups, desiredPresenceSender } from "./DesiredPresence.ts"
import type { SocketMode } from "./SocketMode.ts"
import { directoryViaStore } from "./StoreDirectory.ts"

/** How long a tenant's side stays after its last socket closed (a PBX that reconnects at once finds it running). */
const idleStop = "10 seconds"
/** How often the runner's database is checked, and after how long unreachable every side is stopped. */
const healthEvery = "2 seconds"
const unreachableStop = 6_000

interface Side {
  /** The loopback port its server listens on, once started. */
  readonly port: Promise<number>
  /** Websockets open to it. */
  sockets: number
  readonly scope: Scope.Closeable
  states: SubscriptionRef.SubscriptionRef<ReadonlyMap<string, PbxState>> | undefined
  /** Bumped on every open, so a delayed stop knows whether a socket came meanwhile. */
  generation: number
}

export interface PbxSides {
  /**
   * The loopback port of the tenant's side, started if it does not run here, and `closed`, to call once when the
   * socket counted for it closes (it counts against the side it was opened on, even if that one stopped meanwhile).
   */
  readonly open: (tenant: TenantId) => Promise<{ readonly port: number; readonly closed: () => void }>
  /** The PBX states of every side running here (for the runner's row and the tenants' status pages). */
  readonly states: Effect.Effect<ReadonlyMap<TenantId, ReadonlyMap<string, PbxState>>>
}

/** One tenant's side: its server and services in `scope`; the port it listens on. */
const startSide = (
  tenant: TenantId,
  settings: ConnectorSettings,
  runner: string,
  services: Context.Context<StateStore | DesiredWakeups>
) => {
  // The writer routes by the directory in the store (a side holding only a slave has no table of its own); the
  // master's table, when its socket is here, is replicated and published to the store.
  const pbx = desiredPresenceSender(tenant, runner).pipe(
    Layer.provideMerge(pbxServices(directoryViaStore(tenant, runner))),
    Layer.provideMerge(PbxSettings.layer(settings.pbx))
  )
  const server = serveRoutes(PbxAppService.routes, { host: "127.0.0.1", port: 0, maxFrameBytes: settings.pbx.maxFrameBytes })
  return Layer.build(server.pipe(Layer.provideMerge(pbx))).pipe(
    Effect.provideContext(services),
    Effect.provideService(Metric.CurrentMetricAttributes, { tenant }),
    Effect.annotateLogs({ tenant }),
    Effect.flatMap((context) => {
      const address = Context.get(context, HttpServer.HttpServer).address
      return "port" in address
        ? Effect.succeed({ port: address.port, states: Context.get(context, PbxConnections).states })
        : Effect.die(new Error("the PBX side's server has no TCP port"))
    })
  )
}

/** A port to come, with what settles it. */
const portPromise = () => {
  let resolve!: (port: number) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<number>((ok, fail) => {
    resolve = ok
    reject = fail
  })
  return { promise, resolve, reject }
}

interface Health {
  /** Since when the state database has not answered (epoch ms), if it does not now. */
  unreachableSince: number | undefined
}

/**
 * A runner cut off from the database reads no pending command, so its PBXs would get nothing new: once it has not
 * reached the database for `unreachableStop`, every side stops and its sockets close, and the PBXs reconnect through
 * the load balancer to a runner that can (this one refuses new sockets meanwhile; its /readyz says not ready).
 */
const stopWhenUnreachable = (
  reachable: Effect.Effect<boolean>,
  health: Health,
  running: () => ReadonlyArray<readonly [TenantId, Side]>,
  stop: (tenant: TenantId, side: Side) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    while (true) {
      yield* Effect.sleep(healthEvery)
      const now = yield* Clock.currentTimeMillis
      if (yield* reachable) {
        health.unreachableSince = undefined
        continue
      }
      health.unreachableSince ??= now
      const sides = running()
      if (now - health.unreachableSince < unreachableStop || sides.length === 0) continue
      yield* Effect.logWarning(`cluster: the state database cannot be reached: closing the PBX sockets of ${sides.map(([tenant]) => tenant).join(", ")}`)
      for (const [tenant, side] of sides) yield* stop(tenant, side)
    }
  }).pipe(Effect.forkScoped)

/** The PBX states of every side running. */
const statesOf = (sides: ReadonlyMap<TenantId, Side>) =>
  Effect.gen(function*() {
    const all = new Map<TenantId, ReadonlyMap<string, PbxState>>()
    for (const [tenant, side] of sides) if (side.states !== undefined) all.set(tenant, yield* SubscriptionRef.get(side.states))
    return all
  })

/**
 * A tenant updated to need its owner's connector (SocketMode.ts): its side here stops, its sockets close and the PBXs
 * reconnect, to be piped to the owner (the owner's connector restarts with the update and then holds them). A side's
 * configuration is read again when the store's tenant changes say that its tenant changed (the NOTIFY of the update, or
 * the changes' own re-read every 30 s), not every few seconds for every side: that was a read and the opening of the
 * tenant's sealed configuration per side every 5 s, ten a second per runner at 50 tenants.
 */
export const stopWhenOwnerMode = <S>(
  changes: Stream.Stream<TenantChange, unknown>,
  socketMode: (tenant: TenantId) => Effect.Effect<SocketMode, unknown>,
  sides: ReadonlyMap<TenantId, S>,
  stop: (tenant: TenantId, side: S) => Effect.Effect<void>
) =>
  changes.pipe(
    Stream.runForEach((change) =>
      Effect.gen(function*() {
        const side = sides.get(change.id)
        // "added" also after a re-read that follows a lost connection (every tenant is new to the stream then).
        if (side === undefined || change.kind === "removed") return
        const mode = yield* socketMode(change.id).pipe(Effect.orElseSucceed(() => "any" as const))
        if (mode === "owner" && sides.get(change.id) === side) yield* stop(change.id, side)
      })
    ),
    Effect.tapError((error) => Effect.logWarning(`cluster: following the tenants' changes for the PBX sides failed (${describeCause(error)}); again`)),
    Effect.retry(Schedule.spaced("2 seconds")),
    Effect.forkScoped
  )

/**
 * The runner's PBX sides, in the current scope (closing it stops them all). `settingsOf` reads a tenant's settings
 * (its PBX settings: master, password, path, limits) from the store.
 */
export const makePbxSides = Effect.fnUntraced(function*(options: {
  readonly runner: string
  readonly settingsOf: (tenant: TenantId) => Effect.Effect<ConnectorSettings, unknown>
  /** Where the tenant's PBX sockets are served now (SocketMode.ts), read from its stored configuration. */
  readonly socketMode: (tenant: TenantId) => Effect.Effect<SocketMode, unknown>
  /** The store's tenant changes: a running side's mode is read again when its tenant changed. */
  readonly tenantChanges: Stream.Stream<TenantChange, unknown>
  readonly services: Context.Context<StateStore | DesiredWakeups>
  /** Whether the state database answers now (a runner cut off from it can send nothing: its sockets must move). */
  readonly reachable: Effect.Effect<boolean>
}) {
  const sides = new Map<TenantId, Side>()
  const health: Health = { unreachableSince: undefined }
  const outer = yield* Effect.scope
  // The sides run with the runner's services (its logger and log level among them), not the defaults.
  const run = Effect.runForkWith(yield* Effect.context<never>())
  yield* Effect.addFinalizer(() => Effect.sync(() => sides.clear()))

  const stop = (tenant: TenantId, side: Side, reason: string) =>
    Effect.gen(function*() {
      if (sides.get(tenant) === side) sides.delete(tenant)
      yield* Effect.logInfo(`cluster: PBX side of ${tenant} stopped (${reason})`)
      yield* Scope.close(side.scope, Exit.void)
    })

  const start = (tenant: TenantId): Side => {
    const scope = Scope.forkUnsafe(outer)
    const { promise: port, reject: rejectPort, resolve: resolvePort } = portPromise()
    const side: Side = { port, sockets: 0, scope, states: undefined, generation: 0 }
    sides.set(tenant, side)
    run(Effect.gen(function*() {
      const settings = yield* options.settingsOf(tenant)
      const started = yield* startSide(tenant, settings, options.runner, options.services).pipe(Scope.provide(scope))
      side.states = started.states
      yield* Effect.logInfo(`cluster: PBX side of ${tenant} started (a PBX connected to this runner)`)
      resolvePort(started.port)
    }).pipe(
      Effect.catchCause((cause) =>
        Effect.gen(function*() {
          yield* Effect.logError(`cluster: the PBX side of ${tenant} did not start: ${describeCause(cause)}`)
          rejectPort(new Error(`the PBX side of ${tenant} did not start`))
          yield* stop(tenant, side, "it did not start")
        })
      )
    ))
    return side
  }

  const open = (tenant: TenantId) => {
    if (health.unreachableSince !== undefined) return Promise.reject(new Error("the state database cannot be reached"))
    const side = sides.get(tenant) ?? start(tenant)
    side.sockets++
    side.generation++
    let counted = true
    const closed = () => {
      if (counted) closedOn(tenant, side)
      counted = false
    }
    return side.port.then((port) => ({ port, closed }), (error: unknown) => {
      closed()
      throw error
    })
  }

  const closedOn = (tenant: TenantId, side: Side): void => {
    side.sockets = Math.max(0, side.sockets - 1)
    if (side.sockets > 0) return
    const generation = side.generation
    run(Effect.gen(function*() {
      yield* Effect.sleep(idleStop)
      if (side.sockets === 0 && side.generation === generation && sides.get(tenant) === side) yield* stop(tenant, side, "its last PBX socket closed")
    }))
  }

  yield* stopWhenUnreachable(options.reachable, health, () => [...sides], (tenant, side) => stop(tenant, side, "the state database cannot be reached"))
  yield* stopWhenOwnerMode(options.tenantChanges, options.socketMode, sides, (tenant, side) => stop(tenant, side, "its configuration needs its PBX sockets in its owner's connector"))

  return { open, states: statesOf(sides) } satisfies PbxSides
})
