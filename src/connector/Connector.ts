/**
 * The whole connector as one Layer, built from typed settings: Graph sign-in and client, subscriptions (push) or the
 * poller, the PBX app service, the flow, the status board and the HTTP server that carries the status page, the Graph
 * webhook and the PBX websocket. Everything runs in the layer's scope: closing it stops the whole fiber tree in order.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { Clock, Effect, Layer, Metric, Redacted } from "effect"
import { HttpServer } from "effect/http"
import packageJson from "../../package.json" with { type: "json" }
import { CertificateStore } from "../graph/notifications/crypto/CertificateStore.ts"
import { DecryptPool } from "../graph/notifications/crypto/DecryptPool.ts"
import { ValidationTokens } from "../graph/notifications/crypto/ValidationTokens.ts"
import { NotificationsWarmUp } from "../graph/notifications/crypto/WarmUp.ts"
import { GraphClient } from "../graph/client/GraphClient.ts"
import { accountRef, AppCredentialRef, type CredentialRef, GraphConfig } from "../graph/client/GraphSettings.ts"
import { NotificationsInbox } from "../graph/notifications/NotificationsInbox.ts"
import { PresenceReader } from "../graph/presence/PresenceReader.ts"
import { PresenceBudget } from "../graph/sessions/PresenceBudget.ts"
import { PresenceSource } from "../graph/presence/PresenceSource.ts"
import { SubscriptionApi } from "../graph/subscriptions/SubscriptionApi.ts"
import { SubscriptionManager } from "../graph/subscriptions/SubscriptionManager.ts"
import { SubscriptionSettings } from "../graph/subscriptions/SubscriptionSettings.ts"
import { TeamsUsers } from "../graph/users/TeamsUsers.ts"
import { TokenService } from "../graph/auth/TokenService.ts"
import { NotificationRoutes } from "../graph/notifications/NotificationRoutes.ts"
import { serveRoutes } from "../http/Server.ts"
import { StatusPageLimits } from "../status/StatusEvents.ts"
import { AdminPassword, ProviderPassword, StatusLoginBackoff, StatusRoutes } from "../status/StatusRoutes.ts"
import { PbxAppService } from "../pbx/socket/PbxAppService.ts"
import { pbxServices } from "../pbx/PbxLayer.ts"
import { PbxSettings } from "../pbx/PbxSettings.ts"
import { PbxDirectory } from "../pbx/directory/PbxDirectory.ts"
import type { PbxConnections } from "../pbx/socket/PbxConnections.ts"
import type { PresenceWriter } from "../pbx/writer/PresenceWriter.ts"
import { FlowConfig } from "./FlowConfig.ts"
import { FlowLayer } from "./Flow.ts"
import { LicenceCheckFromPbx } from "./LicenceCheckFromPbx.ts"
import { Planner } from "./Planner.ts"
import { PlanState } from "./PlanState.ts"
import { PresencePipeline } from "./PresencePipeline.ts"
import { PbxToTeamsLayer } from "./calls/PbxToTeams.ts"
import { LastWrittenLayer } from "./LastWritten.ts"
import { makeRepeatGate, repeatGateLayer } from "../observability/LogRepeats.ts"
import { announcedStop } from "./Shutdown.ts"
import { prepareDataDir } from "../config/DataDir.ts"
import { RecentErrors, recentErrorsLogger } from "../status/RecentErrors.ts"
import type { ConnectorSettings } from "../config/Settings.ts"
import { initialSnapshot, StatusBoard } from "../status/StatusBoard.ts"
import { defaultTenantStateLayer } from "../state/StateSettings.ts"
import type { StateStore } from "../state/StateStore.ts"
import type { StateStoreError } from "../state/StateStoreError.ts"
import type { TenantState } from "../state/TenantState.ts"
import { StatusProjectorLayer } from "../status/StatusProjector.ts"
import { HeapHeadroomLayer } from "./HeapHeadroom.ts"

export const version: string = packageJson.version

export interface ConnectorOptions {
  /** Shown on the status page in demo mode: the simulators' control base URLs. */
  readonly demo?: { readonly graphSimulator: string; readonly pbxSimulator: string } | undefined
  /**
   * The PresenceWriter the flow writes to, built over the real one (a cluster's owner puts desired commands into the
   * state store instead of writing to the PBX itself: src/cluster/DesiredPresence.ts). Default: the real writer.
   */
  readonly flowWriter?: Layer.Layer<PresenceWriter, never, PresenceWriter | PbxConnections | PbxDirectory | PbxSettings> | undefined
  /**
   * The tenant's state over an already open store (a cluster runner's: each tenant under its own id). Default: tenant
   * `default` in the store `settings.state` names.
   */
  readonly state?: Layer.Layer<TenantState | StateStore, StateStoreError> | undefined
  /**
   * The master's user directory (a cluster's tenant: read from the state store, where the runner holding the master's
   * socket publishes it; src/cluster/StoreDirectory.ts). Default: replicated on this connector's own PBX connection.
   */
  readonly pbxDirectory?: Layer.Layer<PbxDirectory, never, PbxConnections | PbxSettings | StateStore> | undefined
  /** The tenant this connector serves: the `tenant` label of every metric it updates. Default `default`. */
  readonly tenant?: string | undefined
  /**
   * The decryption pool of rich notifications (a tenant's in a process of many: over the process's shared workers,
   * DecryptPool.layerShared). Default: workers of the connector's own (`notifications.decryptWorkers`).
   */
  readonly decryptPool?: Layer.Layer<DecryptPool, never, CertificateStore | SubscriptionSettings> | undefined
}

/** Signs every configured credential in ahead of need, so tokens are fresh and the status page is accurate. */
export const SignInKeeper = Layer.effectDiscard(Effect.gen(function*() {
  const graph = yield* GraphConfig
  const tokens = yield* TokenService
  const credentials: Array<CredentialRef> = [
    ...(graph.app !== undefined ? [AppCredentialRef] : []),
    ...graph.accounts.map((a) => accountRef(a.name))
  ]
  yield* Effect.gen(function*() {
    while (true) {
      for (const credential of credentials) yield* tokens.getToken(credential).pipe(Effect.ignore)
      yield* Effect.sleep("1 minute")
    }
  }).pipe(Effect.forkScoped)
}))

/** The settings as services; first of all, the data directory exists, 0700, and nothing in it is open to others. */
const configLayer = (settings: ConnectorSettings, options: ConnectorOptions) =>
  Layer.mergeAll(
    Layer.effectDiscard(prepareDataDir(settings.state.dataDir)),
    // The state store (files, or PostgreSQL connected and migrated) is open before anything that keeps state starts.
    options.state ?? defaultTenantStateLayer(settings.state),
    Layer.succeed(GraphConfig, settings.graph),
    SubscriptionSettings.layer(settings.subscriptions),
    PbxSettings.layer(settings.pbx),
    Layer.succeed(FlowConfig, settings.flow),
    Layer.succeed(AdminPassword, settings.adminPassword ?? Redacted.make(randomPassword())),
    Layer.succeed(ProviderPassword, settings.providerPassword),
    ...(settings.statusPage === undefined ? [] : [
      Layer.succeed(StatusLoginBackoff, settings.statusPage.loginBackoff),
      Layer.succeed(StatusPageLimits, settings.statusPage.limits)
    ])
  )

const graphLayer = Layer.mergeAll(TeamsUsers.layer, PresenceReader.layer, SubscriptionApi.layer).pipe(
  Layer.provideMerge(GraphClient.layer),
  // One presence budget for the application: reads and the PBX → Teams writes count together.
  Layer.provideMerge(PresenceBudget.layer),
  Layer.provideMerge(TokenService.layer),
  Layer.provideMerge(NodeHttpClient.layerUndici)
)

const boardLayer = (settings: ConnectorSettings, options: ConnectorOptions) =>
  Layer.effect(
    StatusBoard,
    Effect.flatMap(Clock.currentTimeMillis, (startedAt) =>
      StatusBoard.make({
        ...initialSnapshot({ version, startedAt, mode: settings.flow.mode }),
        ...(options.demo !== undefined ? { demo: options.demo } : {})
      }))
  )

// The warm-up starts with the inbox: the first notification finds the signing keys fetched and the workers warm.
const inboxLayer = (options: ConnectorOptions) => Layer.merge(NotificationsInbox.layer, NotificationsWarmUp.layer).pipe(
  Layer.provideMerge(options.decryptPool ?? DecryptPool.layer),
  Layer.provideMerge(ValidationTokens.layer),
  Layer.provideMerge(CertificateStore.layer),
  announcedStop("the notification inbox and the decryption workers")
)

// Each stage logs when it begins to stop, in the order of docs/architecture.md (Shutdown order).
const sharedLayer = (settings: ConnectorSettings, options: ConnectorOptions) =>
  Layer.mergeAll(pbxServices(options.pbxDirectory ?? PbxDirectory.layer), graphLayer, boardLayer(settings, options), PlanState.layer).pipe(
    announcedStop("the shared services (presence writer, user table, PBX registry, Graph client)"),
    Layer.provideMerge(configLayer(settings, options))
  )

/** Push: inbox and webhook, subscriptions, the reconciler. */
const pushPresence = (options: ConnectorOptions) => PresenceSource.layerPush.pipe(
  announcedStop("the presence reads (reconciler, refetch, resync)"),
  Layer.provideMerge(SubscriptionManager.layer.pipe(announcedStop("the subscription manager (state saved to the state store)"))),
  Layer.provideMerge(LicenceCheckFromPbx),
  Layer.provideMerge(inboxLayer(options))
)

/** Poll-only: no webhook, no subscriptions. */
const pollPresence = PresenceSource.layerPoll.pipe(announcedStop("the presence reads (poller)"))

// The flow starts last and stops first; the pipeline's rows are shared with the status projector.
const workersLayer = (options: ConnectorOptions) => {
  const workers = Layer.mergeAll(FlowLayer.pipe(Layer.provide(Planner.layer)), StatusProjectorLayer, SignInKeeper, HeapHeadroomLayer).pipe(
    Layer.provide(PresencePipeline.layer)
  )
  // The last command per PBX user is kept by the flow's own writer where one is given (a cluster's desired commands);
  // otherwise LastWrittenLayer keeps it, built first so that the writer holds what the PBXs had before any write.
  return (options.flowWriter === undefined
    ? workers.pipe(Layer.provideMerge(LastWrittenLayer))
    : workers.pipe(Layer.provide(options.flowWriter))).pipe(
    announcedStop("the flow (no more intake; pending PBX writes are delivered)")
  )
}

const serve = <E, R>(settings: ConnectorSettings, routes: Layer.Layer<never, E, R>) =>
  serveRoutes(routes, { ...settings.http, maxFrameBytes: settings.pbx.maxFrameBytes, public: settings.http.port !== 0 }).pipe(
    announcedStop("the HTTP server (status page, webhook, PBX connections)")
  )

/**
 * PBX → Teams (off by default, and then nothing of it runs): built after the server, so it stops before the PBX
 * connections do; it provides the loop guard the presence pipeline consults.
 */
const pbxToTeamsLayer = (settings: ConnectorSettings) =>
  settings.pbxToTeams === undefined
    ? Layer.empty
    : PbxToTeamsLayer({
      settings: settings.pbxToTeams,
      graph: settings.graph,
      contact: settings.pbx.contact,
      requestTimeoutMs: settings.pbx.requestTimeoutMs
    }).pipe(announcedStop("PBX → Teams (the Teams presence sessions of PBX calls are cleared, if configured)"))

// The HTTP server starts once the services behind its routes exist; the workers start last.
const pushApp = (settings: ConnectorSettings, options: ConnectorOptions) => {
  const core = pushPresence(options).pipe(Layer.provideMerge(sharedLayer(settings, options)))
  const server = serve(settings, Layer.mergeAll(StatusRoutes, PbxAppService.routes, NotificationRoutes)).pipe(Layer.provideMerge(core))
  return workersLayer(options).pipe(Layer.provideMerge(pbxToTeamsLayer(settings)), Layer.provideMerge(server))
}

const pollApp = (settings: ConnectorSettings, options: ConnectorOptions) => {
  const core = pollPresence.pipe(Layer.provideMerge(sharedLayer(settings, options)))
  const server = serve(settings, Layer.mergeAll(StatusRoutes, PbxAppService.routes)).pipe(Layer.provideMerge(core))
  return workersLayer(options).pipe(Layer.provideMerge(pbxToTeamsLayer(settings)), Layer.provideMerge(server))
}

export const ConnectorLayer = (settings: ConnectorSettings, options: ConnectorOptions = {}) => {
  const app = settings.flow.mode === "push" ? pushApp(settings, options) : pollApp(settings, options)
  // Warnings and errors also go to the status page's "recent errors"; repeats of one kind are rate-limited for both.
  return Layer.unwrap(Effect.sync(() => {
    const errors = RecentErrors.make()
    return app.pipe(
      Layer.provide(repeatGateLayer(makeRepeatGate(), [recentErrorsLogger(errors)])),
      Layer.provide(Layer.succeed(RecentErrors, errors)),
      // Every fiber of the connector inherits it: one scrape of a process with many tenants tells them apart.
      Layer.provide(Layer.succeed(Metric.CurrentMetricAttributes, { tenant: options.tenant ?? "default" }))
    )
  }))
}

/** Used when no admin password is configured: unguessable, never logged (set CONNECTOR_ADMIN_PASSWORD to open the page). */
const randomPassword = (): string => crypto.randomUUID() + crypto.randomUUID()

/** The bound address of the connector's HTTP server (port 0 picks a free port). */
export const serverUrl = Effect.gen(function*() {
  const address = (yield* HttpServer.HttpServer).address
  return "port" in address ? `http://127.0.0.1:${address.port}` : "http://127.0.0.1"
})
