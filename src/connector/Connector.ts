/**
 * The whole connector as one Layer, built from typed settings: Graph sign-in and client, subscriptions (push) or the
 * poller, the PBX app service, the flow, the status board and the HTTP server that carries the status page, the Graph
 * webhook and the PBX websocket. Everything runs in the layer's scope: closing it stops the whole fiber tree in order.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { Clock, Effect, Layer, Redacted } from "effect"
import { HttpServer } from "effect/http"
import packageJson from "../../package.json" with { type: "json" }
import { CertificateStore } from "../graph/notifications/crypto/CertificateStore.ts"
import { DecryptPool } from "../graph/notifications/crypto/DecryptPool.ts"
import { ValidationTokens } from "../graph/notifications/crypto/ValidationTokens.ts"
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
import { AdminPassword, StatusLoginBackoff, StatusRoutes } from "../status/StatusRoutes.ts"
import { PbxAppService } from "../pbx/socket/PbxAppService.ts"
import { PbxServices } from "../pbx/PbxLayer.ts"
import { PbxSettings } from "../pbx/PbxSettings.ts"
import { FlowConfig, FlowLayer, FlowState, LicenceCheckFromPbx } from "./Flow.ts"
import { PbxToTeamsLayer } from "./calls/PbxToTeams.ts"
import { makeRepeatGate, repeatGateLayer } from "../observability/LogRepeats.ts"
import { announcedStop } from "./Shutdown.ts"
import { prepareDataDir } from "../config/DataDir.ts"
import { RecentErrors, recentErrorsLogger } from "../status/RecentErrors.ts"
import type { ConnectorSettings } from "../config/Settings.ts"
import { initialSnapshot, StatusBoard } from "../status/StatusBoard.ts"
import { StatusProjectorLayer } from "../status/StatusProjector.ts"
import { HeapHeadroomLayer } from "./HeapHeadroom.ts"

export const version: string = packageJson.version

export interface ConnectorOptions {
  /** Shown on the status page in demo mode: the simulators' control base URLs. */
  readonly demo?: { readonly graphSimulator: string; readonly pbxSimulator: string } | undefined
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

export const ConnectorLayer = (settings: ConnectorSettings, options: ConnectorOptions = {}) => {
  const push = settings.flow.mode === "push"
  const serverOptions = { ...settings.http, maxFrameBytes: settings.pbx.maxFrameBytes }
  const config = Layer.mergeAll(
    // First of all: the data directory exists, 0700, and nothing in it is open to other users.
    Layer.effectDiscard(prepareDataDir(settings.graph.dataDir)),
    Layer.succeed(GraphConfig, settings.graph),
    SubscriptionSettings.layer(settings.subscriptions),
    PbxSettings.layer(settings.pbx),
    Layer.succeed(FlowConfig, settings.flow),
    Layer.succeed(AdminPassword, settings.adminPassword ?? Redacted.make(randomPassword())),
    ...(settings.statusPage === undefined ? [] : [
      Layer.succeed(StatusLoginBackoff, settings.statusPage.loginBackoff),
      Layer.succeed(StatusPageLimits, settings.statusPage.limits)
    ])
  )

  const graph = Layer.mergeAll(TeamsUsers.layer, PresenceReader.layer, SubscriptionApi.layer).pipe(
    Layer.provideMerge(GraphClient.layer),
    // One presence budget for the application: reads and the PBX → Teams writes count together.
    Layer.provideMerge(PresenceBudget.layer),
    Layer.provideMerge(TokenService.layer),
    Layer.provideMerge(NodeHttpClient.layerUndici)
  )

  const board = Layer.effect(
    StatusBoard,
    Effect.gen(function*() {
      const startedAt = yield* Clock.currentTimeMillis
      return yield* StatusBoard.make({
        ...initialSnapshot({ version, startedAt, mode: settings.flow.mode }),
        ...(options.demo !== undefined ? { demo: options.demo } : {})
      })
    })
  )

  const inbox = NotificationsInbox.layer.pipe(
    Layer.provideMerge(DecryptPool.layer),
    Layer.provideMerge(ValidationTokens.layer),
    Layer.provideMerge(CertificateStore.layer)
  )

  // Each stage logs when it begins to stop, in the order of docs/architecture.md (Shutdown order).
  const shared = Layer.mergeAll(PbxServices, graph, board, FlowState.layer).pipe(
    announcedStop("the shared services (presence writer, user table, PBX registry, Graph client)")
  )

  // The HTTP server starts once the services behind its routes exist; the flow starts last and stops first.
  const workers = Layer.mergeAll(FlowLayer, StatusProjectorLayer, SignInKeeper, HeapHeadroomLayer).pipe(
    announcedStop("the flow (no more intake; pending PBX writes are delivered)")
  )
  // PBX → Teams (off by default, and then nothing of it runs): built after the server, so it stops before the PBX
  // connections do; it provides the loop guard the flow consults.
  const pbxToTeams = settings.pbxToTeams === undefined
    ? Layer.empty
    : PbxToTeamsLayer({
      settings: settings.pbxToTeams,
      graph: settings.graph,
      contact: settings.pbx.contact,
      requestTimeoutMs: settings.pbx.requestTimeoutMs
    }).pipe(announcedStop("PBX → Teams (the Teams presence sessions of PBX calls are cleared, if configured)"))
  const serve = <E, R>(routes: Layer.Layer<never, E, R>) =>
    serveRoutes(routes, serverOptions).pipe(announcedStop("the HTTP server (status page, webhook, PBX connections)"))

  // Push: inbox and webhook, subscriptions, the reconciler.
  const pushApp = () => {
    const presence = PresenceSource.layerPush.pipe(
      announcedStop("the presence reads (reconciler, refetch, resync)"),
      Layer.provideMerge(SubscriptionManager.layer.pipe(announcedStop("the subscription manager (state saved to subscriptions.json)"))),
      Layer.provideMerge(LicenceCheckFromPbx),
      Layer.provideMerge(inbox.pipe(announcedStop("the notification inbox and the decryption workers")))
    )
    const core = presence.pipe(Layer.provideMerge(shared), Layer.provideMerge(config))
    const server = serve(Layer.mergeAll(StatusRoutes, PbxAppService.routes, NotificationRoutes)).pipe(Layer.provideMerge(core))
    return workers.pipe(Layer.provideMerge(pbxToTeams), Layer.provideMerge(server))
  }

  // Poll-only: no webhook, no subscriptions.
  const pollApp = () => {
    const core = PresenceSource.layerPoll.pipe(announcedStop("the presence reads (poller)"), Layer.provideMerge(shared), Layer.provideMerge(config))
    const server = serve(Layer.mergeAll(StatusRoutes, PbxAppService.routes)).pipe(Layer.provideMerge(core))
    return workers.pipe(Layer.provideMerge(pbxToTeams), Layer.provideMerge(server))
  }

  const app = push ? pushApp() : pollApp()

  // Warnings and errors also go to the status page's "recent errors"; repeats of one kind are rate-limited for both.
  return Layer.unwrap(Effect.gen(function*() {
    const errors = RecentErrors.make()
    return app.pipe(
      Layer.provide(repeatGateLayer(makeRepeatGate(), [recentErrorsLogger(errors)])),
      Layer.provide(Layer.succeed(RecentErrors, errors))
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
