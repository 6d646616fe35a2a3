/**
 * The embedded demo: the Graph simulator (50 Teams users whose presences change every few seconds), the connector,
 * and a PBX simulator (master + slave) that connects to it — all over real sockets on this machine, configured
 * through the same configuration schema as production.
 */
import { Console, Context, Effect, Exit, Layer, Random, Redacted, Scope } from "effect"
import { Activities } from "../domain/Presence.ts"
import { generateUsers, type GraphSimulatorHandle, startDemoGraphSimulator } from "../simulators/graph/GraphSimulator.ts"
import { JWKS_PATH } from "../simulators/graph/SimJwks.ts"
import { SubscriptionsExtension } from "../simulators/graph/SubscriptionsRoutes.ts"
import { demoSystemOptions, PbxSimulator, type PbxSimulatorHandle } from "../simulators/pbx/PbxSimulator.ts"
import { decodeConfig } from "../config/ConfigFile.ts"
import { freePort } from "../http/Server.ts"
import { ConnectorLayer, serverUrl } from "../connector/Connector.ts"
import { type ConnectorSettings, settingsFromConfig } from "../config/Settings.ts"
import { StatusBoard } from "../status/StatusBoard.ts"
import type { StateSettings } from "../state/StateSettings.ts"
import { SubscriptionManager } from "../graph/subscriptions/SubscriptionManager.ts"

export interface DemoOptions {
  readonly port: number
  /** The Graph simulator's port (default: any free port). */
  readonly graphPort?: number | undefined
  /** The port of the PBX simulator's control API (default: any free port). */
  readonly pbxPort?: number | undefined
  readonly host?: string
  readonly userCount?: number
  readonly adminPassword: Redacted.Redacted<string>
  readonly dataDir: string
  /** Seconds between presence changes in Teams (0 = none, for tests). */
  readonly changeEverySeconds?: number
  /** push (default: change notifications + reconciliation) or poll (poll-only mode). */
  readonly mode?: "push" | "poll"
  /** poll mode: seconds between polls (default 5). */
  readonly pollSeconds?: number
  /** notifications.deleteSubscriptionsOnShutdown for the demo's connector. */
  readonly deleteSubscriptionsOnShutdown?: boolean
  /** shutdown.clearPresences for the demo's connector. */
  readonly clearPresencesOnShutdown?: boolean
  /** pbx.licensing for the demo's connector (default appRight); with appLicence the App objects enable PbxAdminApi. */
  readonly licensing?: "appRight" | "appLicence" | "all"
  /** The `pbxToTeams` section for the demo's connector (PBX calls shown in Teams); off when left out. */
  readonly pbxToTeams?: Record<string, unknown>
  /** Where the demo's connector keeps its state (default: files in `dataDir`, keys from the environment). */
  readonly state?: Pick<StateSettings, "database" | "keys">
}

export interface DemoHandle {
  readonly url: string
  readonly graph: GraphSimulatorHandle
  readonly pbx: PbxSimulatorHandle
  readonly teamsUserIds: ReadonlyArray<string>
  /** Stops the connector alone (its orderly shutdown), leaving the simulators running. */
  readonly stopConnector: Effect.Effect<void>
  /** Starts the connector again (stopping the running one first) on the same port and data directory: a restart. */
  readonly restartConnector: Effect.Effect<void, unknown>
  /** Renews the presence subscriptions now, as the connector's timer does every presenceRenewMinutes (push mode). */
  readonly renewPresence: Effect.Effect<void>
}

const tenantId = "11111111-2222-3333-4444-555555555555"
const clientId = "66666666-7777-8888-9999-000000000000"
const clientSecret = "demo-secret"
const pbxPassword = "demo-app-object-password"

/** The availability that goes with an activity, as Teams shows them together. */
const availabilityOf = (activity: string): string =>
  activity === "InACall" || activity === "InAConferenceCall" || activity === "InAMeeting" || activity === "Presenting"
    ? "Busy"
    : activity === "UrgentInterruptionsOnly"
    ? "DoNotDisturb"
    : activity === "OutOfOffice" || activity === "Inactive"
    ? "Away"
    : activity === "OffWork"
    ? "Offline"
    : activity

/** Changes a few random users' presences, forever. */
export const animate = Effect.fn("Demo.animate")(function*(graph: GraphSimulatorHandle, ids: ReadonlyArray<string>, everySeconds: number) {
  while (true) {
    yield* Effect.sleep(`${everySeconds} seconds`)
    const count = yield* Random.nextIntBetween(1, 4)
    for (let i = 0; i < count; i++) {
      const id = ids[yield* Random.nextIntBetween(0, ids.length - 1)]!
      const activity = Activities[yield* Random.nextIntBetween(0, Activities.length - 1)]!
      yield* graph.setPresence(id, { availability: availabilityOf(activity), activity })
    }
  }
})

/** The connector's configuration in the demo: the production schema, pointed at the simulators. */
const demoConfig = (options: DemoOptions, graphUrl: string, host: string, port: number) => ({
  tenantId,
  clientId,
  app: { clientSecret },
  accounts: [{ name: "presence-1", username: "presence-1@contoso.com", flow: "password", password: "demo-password" }],
  graph: { loginBaseUrl: graphUrl, graphBaseUrl: graphUrl, jwksUrl: graphUrl + JWKS_PATH },
  notifications: {
    mode: options.mode ?? "push",
    publicBaseUrl: `http://127.0.0.1:${port}`,
    deleteSubscriptionsOnShutdown: options.deleteSubscriptionsOnShutdown ?? false
  },
  pbx: { masterPbx: "pbx-master", appPassword: pbxPassword, licensing: options.licensing ?? "appRight" },
  http: { host, port },
  dataDir: options.dataDir,
  timers: { replanDebounceSeconds: 1, pollSeconds: options.pollSeconds ?? 5 },
  ...(options.pbxToTeams !== undefined ? { pbxToTeams: { enabled: true, ...options.pbxToTeams } } : {})
})

/**
 * The connector in a scope of its own, so a test can stop it (and see its shutdown) while the simulators run on, and
 * start it again over the same data directory.
 */
const connectorSlot = (settings: ConnectorSettings, demo: { readonly graphSimulator: string; pbxSimulator: string }) => {
  let running: { readonly scope: Scope.Closeable; readonly context: Context.Context<unknown> } | undefined
  const stop = Effect.suspend(() => {
    const current = running
    running = undefined
    return current === undefined ? Effect.void : Scope.close(current.scope, Exit.void)
  })
  const launch = Effect.gen(function*() {
    yield* stop
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(ConnectorLayer(settings, { demo: { ...demo } }), scope).pipe(
      Effect.onError(() => Scope.close(scope, Exit.void))
    )
    running = { scope, context: context as Context.Context<unknown> }
    return context
  })
  const renewPresence = Effect.suspend(() => {
    const manager = running === undefined ? undefined : Context.getOption(running.context as Context.Context<SubscriptionManager>, SubscriptionManager)
    return manager === undefined || manager._tag === "None" ? Effect.void : manager.value.renewPresence
  })
  return { launch, stop, renewPresence }
}

/**
 * The PBX system: the PBX users carry the Teams users' addresses (demoSystemOptions names them as generateUsers does),
 * so the e-mail matching pairs them; half are at the slave. Like a real PBX, the App objects carry no service licences:
 * users are served because the App is ticked on their Apps tab (and, for appLicence, they hold an App licence).
 */
const startPbx = (options: DemoOptions, connectorUrl: string, userCount: number) =>
  PbxSimulator.make(demoSystemOptions({
    connectUrl: connectorUrl.replace(/^http/, "ws") + "/pbx",
    password: pbxPassword,
    userCount,
    controlPort: options.pbxPort ?? 0,
    // appLicence asks PbxAdminApi; pbxToTeams source rcc needs the RCC checkmark.
    ...(options.licensing === "appLicence" || options.pbxToTeams?.["source"] === "rcc"
      ? {
        apis: [
          "PbxApi",
          "PbxTableUsers",
          ...(options.licensing === "appLicence" ? ["PbxAdminApi"] : []),
          ...(options.pbxToTeams?.["source"] === "rcc" ? ["RCC"] : [])
        ]
      }
      : {})
  }))

/** Starts the three parts in the current scope; the connector runs until the scope closes. */
export const startDemo = Effect.fn("Demo.start")(function*(options: DemoOptions): Effect.fn.Return<DemoHandle, unknown, Scope.Scope> {
  const userCount = options.userCount ?? 50
  const host = options.host ?? "127.0.0.1"
  const port = options.port === 0 ? yield* freePort(host) : options.port
  // A separate app registration for the PBX → Teams writes, when the demo's configuration names one.
  const writer = options.pbxToTeams?.["app"] as { readonly clientId?: unknown; readonly clientSecret?: unknown } | undefined
  const graph = yield* startDemoGraphSimulator({
    userCount,
    ...(options.graphPort !== undefined ? { port: options.graphPort } : {}),
    tenantId,
    clientId,
    clientSecret,
    extensions: [SubscriptionsExtension({ batchWindowMillis: 20 })],
    ...(typeof writer?.clientId === "string" && typeof writer.clientSecret === "string"
      ? { extraApps: [{ clientId: writer.clientId, clientSecrets: [{ value: writer.clientSecret }] }] }
      : {})
  })
  const teamsUserIds = generateUsers(userCount).map((u) => u.id!)
  const configured = yield* settingsFromConfig(yield* decodeConfig(demoConfig(options, graph.url, host, port), "demo"))
  const settings = options.state === undefined ? configured : { ...configured, state: { ...configured.state, ...options.state } }
  const demo = { graphSimulator: graph.url + "/_sim", pbxSimulator: "(starting)" }
  const connector = connectorSlot({
    ...settings,
    adminPassword: options.adminPassword,
    flow: { ...settings.flow, clearOnShutdown: options.clearPresencesOnShutdown === true }
  }, demo)
  yield* Effect.addFinalizer(() => connector.stop)
  const context = yield* connector.launch
  const url = yield* serverUrl.pipe(Effect.provide(context))
  const pbx = yield* startPbx(options, url, userCount)
  demo.pbxSimulator = pbx.controlUrl ?? "(no control API)"
  yield* Context.get(context, StatusBoard).update((snapshot) => ({ ...snapshot, demo: { ...demo } }))
  if ((options.changeEverySeconds ?? 3) > 0) {
    yield* animate(graph, teamsUserIds, options.changeEverySeconds ?? 3).pipe(Effect.forkScoped)
  }
  return {
    url,
    graph,
    pbx,
    teamsUserIds,
    stopConnector: connector.stop,
    restartConnector: Effect.asVoid(connector.launch),
    renewPresence: connector.renewPresence
  }
})

export const printDemoBanner = (demo: DemoHandle, password: Redacted.Redacted<string>, generated: boolean) =>
  Console.log(
    [
      "",
      "teams-presence-connector — embedded demo",
      `  status page:     ${demo.url}/`,
      `  user / password: admin / ${generated ? Redacted.value(password) : "(from CONNECTOR_ADMIN_PASSWORD)"}`,
      `  Graph simulator: ${demo.graph.url}/_sim  (control API, docs/simulator-graph.md)`,
      `  PBX simulator:   ${demo.pbx.controlUrl ?? "(no control API)"}  (control API, docs/simulator-pbx.md)`,
      "  Ctrl-C stops everything.",
      ""
    ].join("\n")
  )
