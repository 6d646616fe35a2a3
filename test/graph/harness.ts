/** Shared wiring for the Graph tests: the connector's Graph layers pointed at a simulator, and a temp data dir. */
import { NodeHttpClient } from "@effect/platform-node"
import { Context, Effect, Layer, Redacted } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { GraphClient, type RetryPolicy } from "../../src/graph/client/GraphClient.ts"
import { type DelegatedAccount, GraphConfig, type GraphSettings } from "../../src/graph/client/GraphSettings.ts"
import { PresenceReader, type PresenceReaderOptions } from "../../src/graph/presence/PresenceReader.ts"
import { TeamsUsers } from "../../src/graph/users/TeamsUsers.ts"
import { TokenService } from "../../src/graph/auth/TokenService.ts"
import type { GraphSimulatorHandle } from "../../src/simulators/graph/GraphSimulator.ts"

export const tenantId = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
export const clientId = "12345678-1234-1234-1234-123456789abc"
export const clientSecret = "sim-client-secret-value"

export const tempDataDir = (): string => mkdtempSync(join(tmpdir(), "graph-test-"))

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
  dataDir: tempDataDir(),
  ...overrides
})

export const graphLayer = (
  settings: GraphSettings,
  options: { readonly retry?: Partial<RetryPolicy>; readonly presence?: Partial<PresenceReaderOptions> } = {}
) => {
  const base = Layer.mergeAll(Layer.succeed(GraphConfig, settings), NodeHttpClient.layerUndici)
  const tokens = TokenService.layer.pipe(Layer.provideMerge(base))
  const client = GraphClient.layerWith({ baseDelayMillis: 20, ...options.retry }).pipe(Layer.provideMerge(tokens))
  return Layer.mergeAll(TeamsUsers.layer, PresenceReader.layerWith(options.presence ?? {})).pipe(Layer.provideMerge(client))
}


/** Builds the Graph layers into the caller's scope and returns the services. */
export const buildGraph = (
  settings: GraphSettings,
  options: { readonly retry?: Partial<RetryPolicy>; readonly presence?: Partial<PresenceReaderOptions> } = {}
) =>
  Layer.build(graphLayer(settings, options)).pipe(
    Effect.map((context) => ({
      tokens: Context.get(context, TokenService),
      graph: Context.get(context, GraphClient),
      users: Context.get(context, TeamsUsers),
      presences: Context.get(context, PresenceReader)
    }))
  )
