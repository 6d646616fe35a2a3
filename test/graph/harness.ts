/**
 * Shared wiring for the Graph tests: the connector's Graph layers pointed at a simulator, with tenant `default`'s state
 * in the files of a temporary data directory (or the one given).
 */
import { NodeHttpClient } from "@effect/platform-node"
import { Context, Effect, Layer, Redacted, Stream, SubscriptionRef } from "effect"
import { join } from "node:path"
import { GraphClient, type RetryPolicy } from "../../src/graph/client/GraphClient.ts"
import { type DelegatedAccount, GraphConfig, type GraphSettings } from "../../src/graph/client/GraphSettings.ts"
import type { NotificationsInbox } from "../../src/graph/notifications/NotificationsInbox.ts"
import { PresenceReader, type PresenceReaderOptions } from "../../src/graph/presence/PresenceReader.ts"
import { PresenceSource } from "../../src/graph/presence/PresenceSource.ts"
import { SubscriptionManager, type SubscriptionsState } from "../../src/graph/subscriptions/SubscriptionManager.ts"
import type { SubscriptionSettings } from "../../src/graph/subscriptions/SubscriptionSettings.ts"
import { TeamsUsers } from "../../src/graph/users/TeamsUsers.ts"
import { TokenService } from "../../src/graph/auth/TokenService.ts"
import type { GraphSimulatorHandle } from "../../src/simulators/graph/GraphSimulator.ts"
import { fileState } from "../support/state.ts"
import { tempDirSync } from "../support/tempDir.ts"

export const tenantId = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
export const clientId = "12345678-1234-1234-1234-123456789abc"
export const clientSecret = "sim-client-secret-value"

export const tempDataDir = (): string => tempDirSync("graph-test-")

export const settingsFor = (
  sim: GraphSimulatorHandle,
  overrides: Partial<GraphSettings> & { readonly accounts?: ReadonlyArray<DelegatedAccount> } = {}
): GraphSettings => ({
  tenantId,
  clientId,
  loginBaseUrl: sim.url,
  graphBaseUrl: sim.url,
  app: { _tag: "ClientSecret", secret: Redacted.make(clientSecret) },
  accounts: [],
  ...overrides
})

export interface GraphLayerOptions {
  readonly retry?: Partial<RetryPolicy>
  readonly presence?: Partial<PresenceReaderOptions>
  /** Where refresh tokens are kept (files of tenant `default`); default: a new temporary directory. */
  readonly dataDir?: string
}

export const graphLayer = (settings: GraphSettings, options: GraphLayerOptions = {}) => {
  const base = Layer.mergeAll(Layer.succeed(GraphConfig, settings), NodeHttpClient.layerUndici, Layer.orDie(fileState(options.dataDir ?? tempDataDir())))
  const tokens = TokenService.layer.pipe(Layer.provideMerge(base))
  const client = GraphClient.layerWith({ baseDelayMillis: 20, ...options.retry }).pipe(Layer.provideMerge(tokens))
  return Layer.mergeAll(TeamsUsers.layer, PresenceReader.layerWith(options.presence ?? {})).pipe(Layer.provideMerge(client))
}

/** A subscription manager that holds nothing and never asks for a resync: for a presence source tested on its own. */
export const idleSubscriptionManager = Layer.effect(
  SubscriptionManager,
  Effect.gen(function*() {
    return SubscriptionManager.of({
      setDesiredUsers: () => Effect.void,
      held: Effect.succeed(new Set()),
      state: yield* SubscriptionRef.make<SubscriptionsState>({ shards: [], users: { status: "active" } }),
      resyncs: Stream.never,
      renewPresence: Effect.void,
      renewUsers: Effect.void,
      rotateCertificate: Effect.void
    })
  })
)

/** A presence reader for which Graph knows no presence: reads succeed and change nothing. */
export const emptyPresenceReader = Layer.succeed(PresenceReader, PresenceReader.of({ getPresences: () => Effect.succeed([]) }))

/** A push presence source built into the current scope over `deps`, with the idle subscription manager. */
export const buildPushSource = <E>(deps: Layer.Layer<NotificationsInbox | SubscriptionSettings | PresenceReader, E>) =>
  Layer.build(PresenceSource.layerPush.pipe(Layer.provide(Layer.merge(deps, idleSubscriptionManager)))).pipe(
    Effect.map((context) => Context.get(context, PresenceSource))
  )

/** Builds the Graph layers into the caller's scope and returns the services. */
export const buildGraph = (settings: GraphSettings, options: GraphLayerOptions = {}) =>
  Layer.build(graphLayer(settings, options)).pipe(
    Effect.map((context) => ({
      tokens: Context.get(context, TokenService),
      graph: Context.get(context, GraphClient),
      users: Context.get(context, TeamsUsers),
      presences: Context.get(context, PresenceReader)
    }))
  )
