/**
 * The registry of logged-in PBX connections (master and slaves), each with its own state, and the events the directory
 * and the presence writer follow. A reconnecting PBX replaces its old connection; every state change is logged with
 * its reason and published for the status page.
 */
import { Context, Deferred, Effect, Layer, Option, PubSub, type Scope, Stream, SubscriptionRef } from "effect"
import { type AppLogin, checkmarkOf, type PbxInfo, requiredApis } from "./PbxMessages.ts"
import { PbxSettings, type PbxSettingsOptions } from "../PbxSettings.ts"
import type { PbxConnection } from "./PbxConnection.ts"
import { clip } from "../../domain/LogText.ts"

export interface PbxLastError {
  readonly message: string
  /** What an administrator should do about it. */
  readonly fix: string
}

/** One PBX as the status page shows it. */
export interface PbxState {
  readonly pbx: string
  readonly isMaster: boolean
  readonly connected: boolean
  readonly loggedIn: boolean
  readonly domain?: string
  readonly version?: string
  readonly appObject?: string
  readonly apis: ReadonlyArray<string>
  /** Of PbxApi and PbxTableUsers, those the App object does not enable. */
  readonly missingApis: ReadonlyArray<string>
  readonly lics?: number
  readonly unlicensed?: boolean
  /** Epoch milliseconds of the current connection's login. */
  readonly connectedAt?: number
  readonly lastError?: PbxLastError
}

export type ConnectionEvent =
  | { readonly _tag: "Up"; readonly connection: PbxConnection }
  | { readonly _tag: "Down"; readonly pbx: string; readonly id: number; readonly reason: string }

export class PbxConnections extends Context.Service<PbxConnections, {
  /** Per-PBX state, keyed by PBX name. */
  readonly states: SubscriptionRef.SubscriptionRef<ReadonlyMap<string, PbxState>>
  readonly changes: Stream.Stream<ReadonlyMap<string, PbxState>>
  /** Subscribes to connection events; subscribe before acting on `get`, so that nothing falls between. */
  readonly subscribe: Effect.Effect<PubSub.Subscription<ConnectionEvent>, never, Scope.Scope>
  readonly get: (pbx: string) => Effect.Effect<Option.Option<PbxConnection>>
  readonly master: Effect.Effect<Option.Option<PbxConnection>>
  /** The master's last AppLogin (kept across disconnects). */
  readonly masterLogin: Effect.Effect<Option.Option<AppLogin>>
  readonly isMaster: (pbx: string) => boolean
  /** Used by the app service: a connection that has logged in. Closes the PBX's previous connection. */
  readonly register: (connection: PbxConnection) => Effect.Effect<void>
  /** Used by the app service when a connection ends (a no-op if it was already replaced). */
  readonly unregister: (connection: PbxConnection, reason: string) => Effect.Effect<void>
  readonly pbxInfo: (connection: PbxConnection, info: PbxInfo) => Effect.Effect<void>
  /** Records an error on a PBX's state (e.g. a refused login), with what to do about it. */
  readonly reportError: (pbx: string, error: PbxLastError) => Effect.Effect<void>
}>()("teams-presence-connector/pbx/socket/PbxConnections") {
  static readonly layer = Layer.effect(
    PbxConnections,
    Effect.gen(function*() {
      const settings = yield* PbxSettings
      const registry: Registry = {
        settings,
        states: yield* SubscriptionRef.make<ReadonlyMap<string, PbxState>>(new Map()),
        events: yield* PubSub.unbounded<ConnectionEvent>(),
        live: new Map(),
        masterLogin: undefined
      }
      return PbxConnections.of({
        states: registry.states,
        changes: SubscriptionRef.changes(registry.states),
        subscribe: PubSub.subscribe(registry.events),
        get: (pbx) => Effect.sync(() => Option.fromNullishOr(registry.live.get(pbx))),
        master: Effect.sync(() => Option.fromNullishOr(registry.live.get(settings.masterPbx))),
        masterLogin: Effect.sync(() => Option.fromNullishOr(registry.masterLogin)),
        isMaster: (pbx) => pbx === settings.masterPbx,
        register: (connection) => register(registry, connection),
        unregister: (connection, reason) => unregister(registry, connection, reason),
        pbxInfo: (connection, info) => pbxInfo(registry, connection, info),
        reportError: (pbx, error) => reportError(registry, pbx, error)
      })
    })
  )
}

/** The registry's state: the live connection per PBX, the state the status page shows, the events. */
interface Registry {
  readonly settings: PbxSettingsOptions
  readonly states: SubscriptionRef.SubscriptionRef<ReadonlyMap<string, PbxState>>
  readonly events: PubSub.PubSub<ConnectionEvent>
  readonly live: Map<string, PbxConnection>
  masterLogin: AppLogin | undefined
}

const updateState = (registry: Registry, pbx: string, f: (state: PbxState) => PbxState) =>
  SubscriptionRef.update(registry.states, (current) => {
    const previous = current.get(pbx) ??
      { pbx, isMaster: pbx === registry.settings.masterPbx, connected: false, loggedIn: false, apis: [], missingApis: [] }
    return new Map(current).set(pbx, f(previous))
  })

/** A PBX's state once it logged in: connected, its login's details, no error. */
const loggedIn = (state: PbxState, connection: PbxConnection): PbxState => {
  const { lastError: _, ...rest } = state
  const info = connection.login.info
  return {
    ...rest,
    connected: true,
    loggedIn: true,
    domain: connection.login.domain,
    connectedAt: connection.connectedAt,
    ...(info?.appobj !== undefined ? { appObject: info.appobj } : {}),
    ...(info?.lics !== undefined ? { lics: info.lics } : {}),
    ...(info?.unlicensed !== undefined ? { unlicensed: info.unlicensed } : {})
  }
}

const register = Effect.fn("PbxConnections.register")(function*(registry: Registry, connection: PbxConnection) {
  const previous = registry.live.get(connection.pbx)
  registry.live.set(connection.pbx, connection)
  if (connection.isMaster) registry.masterLogin = connection.login
  if (previous !== undefined) {
    yield* Effect.logInfo(`PBX ${clip(connection.pbx, 64)}: a new connection replaces the previous one`)
    yield* previous.close("replaced by a new connection from the same PBX")
  }
  yield* updateState(registry, connection.pbx, (state) => loggedIn(state, connection))
  const info = connection.login.info
  yield* Effect.logInfo(
    `PBX ${connection.pbx} (${connection.isMaster ? "master" : "slave"}) logged in: App object ${
      info?.appobj ?? connection.login.sip
    }, domain ${connection.login.domain}, service licences ${info?.lics ?? "none"}${info?.unlicensed === true ? ", unlicensed" : ""} (for information: pbx.licensing ${registry.settings.licensing} decides who is served)`
  )
  yield* PubSub.publish(registry.events, { _tag: "Up", connection })
})

const unregister = Effect.fn("PbxConnections.unregister")(function*(registry: Registry, connection: PbxConnection, reason: string) {
  if (registry.live.get(connection.pbx) !== connection) return
  registry.live.delete(connection.pbx)
  yield* updateState(registry, connection.pbx, (state) => ({
    ...state,
    connected: false,
    loggedIn: false,
    lastError: {
      message: `disconnected: ${reason}`,
      fix: "The PBX reconnects by itself; if it does not, check the App object's URL and that the connector is reachable from the PBX"
    }
  }))
  yield* Effect.logWarning(`PBX ${clip(connection.pbx, 64)} disconnected: ${clip(reason, 300)}`)
  yield* PubSub.publish(registry.events, { _tag: "Down", pbx: connection.pbx, id: connection.id, reason })
})

/** The APIs a PBX's App object must enable: per-user App licences are asked of the master with PbxAdminApi. */
const neededApis = (settings: PbxSettingsOptions, isMaster: boolean): ReadonlyArray<string> =>
  settings.licensing === "appLicence" && isMaster ? [...requiredApis, "PbxAdminApi"] : requiredApis

/** A PBX's state once it sent PbxInfo: its version and APIs, and the checkmarks to set when an API is missing. */
const withInfo = (state: PbxState, pbx: string, info: PbxInfo, missingApis: ReadonlyArray<string>): PbxState => ({
  ...state,
  apis: info.apis ?? [],
  missingApis,
  ...(info.version !== undefined ? { version: info.version } : {}),
  ...(missingApis.length > 0
    ? {
      lastError: {
        message: `the App object does not enable ${missingApis.join(" and ")}`,
        fix: `On PBX ${pbx}, open the App object and set the checkmark${missingApis.length > 1 ? "s" : ""} ${
          missingApis.map(checkmarkOf).join(" and ")
        }`
      }
    }
    : {})
})

const pbxInfo = Effect.fn("PbxConnections.pbxInfo")(function*(registry: Registry, connection: PbxConnection, info: PbxInfo) {
  const apis = info.apis ?? []
  const missingApis = neededApis(registry.settings, connection.isMaster).filter((api) => !apis.includes(api))
  if (missingApis.length > 0) {
    yield* Effect.logWarning(
      `PBX ${connection.pbx}: the App object does not enable ${missingApis.join(", ")}; set the checkmark${
        missingApis.length > 1 ? "s" : ""
      } ${missingApis.map(checkmarkOf).join(" and ")} on the App object${
        missingApis.includes("PbxAdminApi") ? " (pbx.licensing appLicence checks every user's App licence with it)" : ""
      }`
    )
  } else {
    yield* Effect.logInfo(`PBX ${clip(connection.pbx, 64)}: version ${clip(info.version ?? "?", 60)}, APIs ${clip(apis.join(", "), 200)}`)
  }
  yield* updateState(registry, connection.pbx, (state) => withInfo(state, connection.pbx, info, missingApis))
  yield* Deferred.succeed(connection.pbxInfo, info)
})

// Only for a PBX the status page already shows (or the master): a refused login names a PBX nobody vouched for,
// and a stream of invented names must not grow the table.
const reportError = Effect.fn("PbxConnections.reportError")(function*(registry: Registry, pbx: string, error: PbxLastError) {
  const known = pbx === registry.settings.masterPbx || (yield* SubscriptionRef.get(registry.states)).has(pbx)
  if (known) yield* updateState(registry, pbx, (state) => ({ ...state, lastError: error }))
})
