/**
 * The embedded demo: the Graph simulator (50 Teams users whose presences change every few seconds), the connector,
 * and a PBX simulator (master + slave) that connects to it — all over real sockets on this machine, configured
 * through the same configuration schema as production.
 */
import { Console, Context, Effect, Exit, Layer, Random, Redacted, Scope } from "effect"
import { Activities } from "../domain/Presence.ts"
import { generateUsers, type GraphSimulatorHandle, startDemoGraphSimulator } from "../simulators/graph/GraphSimulator.ts"
import { JWKS_PATH } from "../simulators/graph/Jwks.ts"
import { SubscriptionsExtension } from "../simulators/graph/SubscriptionsRoutes.ts"
import { demoSystemOptions, PbxSimulator, type PbxSimulatorHandle } from "../simulators/pbx/PbxSimulator.ts"
import { decodeConfig } from "../config/ConfigFile.ts"
import { freePort } from "../http/Server.ts"
import { ConnectorLayer, serverUrl } from "../connector/Connector.ts"
import { settingsFromConfig } from "../config/Settings.ts"
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
const animate = (graph: GraphSimulatorHandle, ids: ReadonlyArray<string>, everySeconds: number) =>
  Effect.gen(function*() {
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

/** Starts the three parts in the current scope; the connector runs until the scope closes. */
export const startDemo = (options: DemoOptions): Effect.Effect<DemoHandle, unknown, Scope.Scope> =>
  Effect.gen(function*() {
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
    const teamsUsers = generateUsers(userCount)
    const teamsUserIds = teamsUsers.map((u) => u.id!)
    const config = yield* decodeConfig(
      {
        tenantId,
        clientId,
        app: { clientSecret },
        accounts: [{ name: "presence-1", username: "presence-1@contoso.com", flow: "password", password: "demo-password" }],
        graph: { loginBaseUrl: graph.url, graphBaseUrl: graph.url, jwksUrl: graph.url + JWKS_PATH },
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
      },
      "demo"
    )
    const configured = yield* settingsFromConfig(config)
    const settings = options.state === undefined ? configured : { ...configured, state: { ...configured.state, ...options.state } }
    const flow = { ...settings.flow, clearOnShutdown: options.clearPresencesOnShutdown === true }
    // The connector has a scope of its own, so a test can stop it (and see its shutdown) while the simulators run on,
    // and start it again over the same data directory.
    let running: { readonly scope: Scope.Closeable; readonly context: Context.Context<unknown> } | undefined
    let pbxControl = "(starting)"
    const stopConnector = Effect.suspend(() => {
      const current = running
      running = undefined
      return current === undefined ? Effect.void : Scope.close(current.scope, Exit.void)
    })
    const launch = Effect.gen(function*() {
      yield* stopConnector
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        ConnectorLayer({ ...settings, adminPassword: options.adminPassword, flow }, {
          demo: { graphSimulator: graph.url + "/_sim", pbxSimulator: pbxControl }
        }),
        scope
      ).pipe(Effect.onError(() => Scope.close(scope, Exit.void)))
      running = { scope, context: context as Context.Context<unknown> }
      return context
    })
    yield* Effect.addFinalizer(() => stopConnector)
    const context = yield* launch
    const url = yield* serverUrl.pipe(Effect.provide(context))

    // The PBX users carry the Teams users' addresses (demoSystemOptions names them as generateUsers does), so the
    // e-mail matching pairs them; half are at the slave. Like a real PBX, the App objects carry no service licences:
    // users are served because the App is ticked on their Apps tab (and, for appLicence, they hold an App licence).
    const pbxOptions = demoSystemOptions({
      connectUrl: url.replace(/^http/, "ws") + "/pbx",
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
    })
    const pbx = yield* PbxSimulator.make(pbxOptions)
    pbxControl = pbx.controlUrl ?? "(no control API)"
    yield* Context.get(context, StatusBoard).update((snapshot) => ({
      ...snapshot,
      demo: { graphSimulator: graph.url + "/_sim", pbxSimulator: pbxControl }
    }))

    if ((options.changeEverySeconds ?? 3) > 0) {
      yield* animate(graph, teamsUserIds, options.changeEverySeconds ?? 3).pipe(Effect.forkScoped)
    }
    const renewPresence = Effect.suspend(() => {
      const manager = running === undefined ? undefined : Context.getOption(running.context as Context.Context<SubscriptionManager>, SubscriptionManager)
      return manager === undefined || manager._tag === "None" ? Effect.void : manager.value.renewPresence
    })
    return { url, graph, pbx, teamsUserIds, stopConnector, restartConnector: Effect.asVoid(launch), renewPresence }
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
