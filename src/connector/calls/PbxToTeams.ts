/**
 * The PBX → Teams direction assembled (docs/pbx-to-teams.md): the call watch on the PBX side, the presence sessions on
 * the Graph side (through the connector's application, or a separate app registration with its own credential and
 * its own presence budget), the join between them, the loop guard the Teams → PBX flow consults, and the status.
 * Needs the PBX registry and settings, the flow's plan, the status board, the Graph configuration, token service,
 * HTTP client and presence budget. On shutdown it clears every session it holds, when configured.
 */
import { Effect, Layer } from "effect"
import type { HttpClient } from "effect/http"
import type { TenantState } from "../../state/TenantState.ts"
import { TokenService } from "../../graph/auth/TokenService.ts"
import { GraphClient } from "../../graph/client/GraphClient.ts"
import { AppCredentialRef, GraphConfig, type GraphSettings } from "../../graph/client/GraphSettings.ts"
import { PresenceBudget } from "../../graph/sessions/PresenceBudget.ts"
import { PresenceSessions } from "../../graph/sessions/PresenceSessions.ts"
import { CallWatch } from "../../pbx/calls/CallWatch.ts"
import { presenceProtocol, rccProtocol } from "../../pbx/calls/WatchProtocol.ts"
import { CallGuard } from "./CallGuard.ts"
import { CallJoin } from "./CallJoin.ts"
import type { PbxToTeamsSettings } from "./PbxToTeamsSettings.ts"
import { PbxToTeamsStatusLayer } from "./PbxToTeamsStatus.ts"

export interface PbxToTeamsContext {
  readonly settings: PbxToTeamsSettings
  /** The connector's Graph settings (tenant, endpoints, its own application). */
  readonly graph: GraphSettings
  /** The PBX contact the connector writes under: its own entries never count as a PBX call. */
  readonly contact: string
  readonly requestTimeoutMs: number
}

/**
 * The Graph client the sessions write with: no retries of its own (the writer retries per user, and a Retry-After
 * pauses the shared budget instead of one request), over the connector's application or a separate one.
 */
const writerGraph = (
  context: PbxToTeamsContext
): Layer.Layer<GraphClient | PresenceBudget, never, GraphConfig | HttpClient.HttpClient | TokenService | PresenceBudget | TenantState> => {
  const writer = context.settings.writer
  const client = GraphClient.layerWith({ maxRetries: 0 })
  // The connector's own application: its presence budget is the one the reads take from too (passed through, so
  // that both branches have one type).
  if (writer._tag === "Shared") return Layer.merge(client, Layer.effect(PresenceBudget, Effect.service(PresenceBudget)))
  const separate: GraphSettings = { ...context.graph, clientId: writer.clientId, app: writer.credential, accounts: [] }
  // Fresh: the shared token service and budget (built from the same layers for the connector's own application) must
  // not be reused. Graph's limit is per application: a separate registration has a budget of its own.
  return Layer.mergeAll(
    client.pipe(Layer.provide(Layer.fresh(TokenService.layer)), Layer.provide(Layer.succeed(GraphConfig, separate))),
    Layer.fresh(PresenceBudget.layer)
  )
}

export const PbxToTeamsLayer = (context: PbxToTeamsContext) => {
  const { settings } = context
  const session = { availability: settings.availability, activity: settings.activity }
  const protocol = settings.source === "rcc"
    ? rccProtocol({ ringing: settings.ringing, hold: settings.hold })
    : presenceProtocol(context.contact)
  const sessions = Layer.unwrap(Effect.gen(function*() {
    const graph = yield* GraphConfig
    return PresenceSessions.layer({
      sessionId: settings.writer._tag === "Shared" ? graph.clientId : settings.writer.clientId,
      credential: AppCredentialRef,
      availability: settings.availability,
      activity: settings.activity,
      expirationMinutes: settings.expirationMinutes,
      refreshMillis: settings.refreshMillis,
      concurrency: settings.concurrency,
      startupHoldMillis: settings.startupHoldMillis
    })
  })).pipe(Layer.provide(writerGraph(context)))
  const parts = Layer.mergeAll(
    CallWatch.layer({ protocol, answerTimeoutMillis: context.requestTimeoutMs, refusedRetryMillis: 5 * 60_000 }),
    sessions,
    CallGuard.layer(session, settings.graceMillis)
  )
  const join = CallJoin.layer({ debounceMillis: settings.debounceMillis, group: settings.group })
  const shutdown = Layer.effectDiscard(Effect.gen(function*() {
    const writer = yield* PresenceSessions
    yield* Effect.logInfo(
      `PBX → Teams is on: calls seen through ${settings.source === "rcc" ? "RCC" : "the PBX presence"}, shown as ` +
        `${settings.availability}/${settings.activity}${settings.group !== undefined ? ` for the group ${settings.group}` : ""}`
    )
    if (!settings.clearOnShutdown) return
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* Effect.logInfo("shutting down: clearing the Teams presence sessions of PBX calls")
        yield* writer.clearAll.pipe(Effect.timeout("10 seconds"), Effect.ignore)
      })
    )
  }))
  return Layer.mergeAll(PbxToTeamsStatusLayer(settings.source), shutdown).pipe(
    Layer.provideMerge(join),
    Layer.provideMerge(parts)
  )
}
