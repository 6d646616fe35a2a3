/**
 * End-to-end wiring for the subscription tests: the Graph simulator with the subscriptions extension, the connector's
 * webhook on its own 127.0.0.1 server, and the manager + presence source pointed at both.
 */
import { Context, Effect, Exit, Layer, Redacted, Scope, Stream, SubscriptionRef } from "effect"
import { CertificateStore } from "../../src/graph/notifications/crypto/CertificateStore.ts"
import { DecryptPool } from "../../src/graph/notifications/crypto/DecryptPool.ts"
import { NotificationsInbox } from "../../src/graph/notifications/NotificationsInbox.ts"
import { PresenceSource } from "../../src/graph/presence/PresenceSource.ts"
import { SubscriptionApi } from "../../src/graph/subscriptions/SubscriptionApi.ts"
import { LicenceCheck } from "../../src/graph/subscriptions/SubscriptionLicenceCheck.ts"
import { SubscriptionManager, type SubscriptionsState } from "../../src/graph/subscriptions/SubscriptionManager.ts"
import { defaultSubscriptionSettings, SubscriptionSettings, type SubscriptionSettingsOptions } from "../../src/graph/subscriptions/SubscriptionSettings.ts"
import { generateUsers, GraphSimulator, type GraphSimulatorHandle, simUserId } from "../../src/simulators/graph/GraphSimulator.ts"
import type { DeliveryOptions } from "../../src/simulators/graph/SimDelivery.ts"
import { JWKS_PATH } from "../../src/simulators/graph/SimJwks.ts"
import { SubscriptionsExtension } from "../../src/simulators/graph/SubscriptionsRoutes.ts"
import { TenantState } from "../../src/state/TenantState.ts"
import { clientId, clientSecret, graphLayer, settingsFor, tenantId } from "./harness.ts"
import { tempDir } from "../support/tempDir.ts"
import { buildServer, webhookServer } from "./notificationsHarness.ts"

export const startSimulator = (options: { readonly users: number; readonly accounts: number; readonly delivery?: Partial<DeliveryOptions> }) =>
  GraphSimulator.make({
    tenantId,
    clientId,
    clientSecrets: [{ value: clientSecret }],
    accounts: Array.from({ length: options.accounts }, (_, i) => ({ upn: `tech${i + 1}@contoso.com`, password: `pw-${i + 1}` })),
    users: generateUsers(options.users),
    extensions: [SubscriptionsExtension({ batchWindowMillis: 10, retries: 1, retryBaseMillis: 50, ...options.delivery })]
  })

/**
 * The connector's webhook server (phase 1): routes, inbox, certificate store, decryption pool, validation tokens, with
 * the state of tenant `default` in the files of `dataDir`.
 */
export const startWebhook = (sim: GraphSimulatorHandle, dataDir: string) =>
  Effect.gen(function*() {
    const base = defaultSubscriptionSettings({
      publicBaseUrl: "http://127.0.0.1",
      appId: clientId,
      jwksUrl: sim.url + JWKS_PATH,
      decryptWorkers: 1
    })
    const server = yield* buildServer(webhookServer(base, dataDir))
    return { ...server, dataDir, settings: { ...base, publicBaseUrl: server.baseUrl } }
  })

export type Webhook = Effect.Success<ReturnType<typeof startWebhook>>

/** Phase 2: the manager and a presence source (push or poll) in the current scope. */
export const startConnector = (
  sim: GraphSimulatorHandle,
  webhook: Webhook,
  overrides: Partial<SubscriptionSettingsOptions> & { readonly accounts: number }
) =>
  Effect.gen(function*() {
    const { accounts, ...rest } = overrides
    const settings: SubscriptionSettingsOptions = { ...webhook.settings, ...rest }
    const graphSettings = settingsFor(sim, {
      accounts: Array.from({ length: accounts }, (_, i) => ({
        name: `tech${i + 1}`,
        username: `tech${i + 1}@contoso.com`,
        flow: "password" as const,
        password: Redacted.make(`pw-${i + 1}`)
      }))
    })
    const graph = graphLayer(graphSettings, { retry: { maxRetries: 1 }, dataDir: webhook.dataDir })
    const shared = Layer.mergeAll(
      Layer.succeedContext(
        Context.make(NotificationsInbox, Context.get(webhook.context, NotificationsInbox)).pipe(
          Context.add(CertificateStore, Context.get(webhook.context, CertificateStore)),
          Context.add(DecryptPool, Context.get(webhook.context, DecryptPool)),
          Context.add(TenantState, Context.get(webhook.context, TenantState))
        )
      ),
      SubscriptionSettings.layer(settings),
      LicenceCheck.allowAll
    )
    if (settings.mode === "poll") {
      const context = yield* Layer.build(PresenceSource.layerPoll.pipe(Layer.provide(graph), Layer.provide(shared)))
      return { source: Context.get(context, PresenceSource), manager: undefined }
    }
    const manager = SubscriptionManager.layer.pipe(Layer.provide(SubscriptionApi.layer))
    const context = yield* Layer.build(
      PresenceSource.layerPush.pipe(Layer.provideMerge(manager), Layer.provide(graph), Layer.provide(shared))
    )
    return { source: Context.get(context, PresenceSource), manager: Context.get(context, SubscriptionManager) }
  })

/**
 * A simulator with `users` users and `accounts` delegated accounts, the webhook, and a push connector with `settings`;
 * with `subscribe`, the simulator's first that many users subscribed.
 */
export const startPushed = (options: {
  readonly users: number
  readonly accounts: number
  readonly subscribe?: number
  readonly delivery?: Partial<DeliveryOptions>
  readonly settings?: Partial<SubscriptionSettingsOptions>
  readonly dataDir?: string
}) =>
  Effect.gen(function*() {
    const sim = yield* startSimulator(options)
    const webhook = yield* startWebhook(sim, options.dataDir ?? (yield* tempDir))
    const { source, manager } = yield* startConnector(sim, webhook, { ...options.settings, accounts: options.accounts })
    if (manager === undefined) return yield* Effect.die(new Error("startPushed starts a connector in push mode"))
    if (options.subscribe !== undefined) yield* manager.setDesiredUsers(ids(options.subscribe))
    return { sim, webhook, source, manager }
  })

/** The simulator's control view of the subscriptions. */
export const simSubscriptions = (sim: GraphSimulatorHandle) =>
  Effect.promise(async () =>
    (await (await fetch(`${sim.url}/_sim/subscriptions`)).json()) as {
      subscriptions: Array<{ id: string; kind: string; userCount: number; creatorId: string }>
      counters: { created: number; deleted: number; expired: number; live: number }
      delivery: { posts: number; itemsDelivered: number; itemsDropped: number }
    }
  )

export const control = (sim: GraphSimulatorHandle, path: string, body: unknown = {}) =>
  Effect.promise(async () => {
    const response = await fetch(`${sim.url}/_sim/subscriptions${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body)
    })
    return { status: response.status, body: await response.json() as unknown }
  })

/** Completes with the manager's first state that satisfies `predicate`. */
export const stateWhere = (ref: SubscriptionRef.SubscriptionRef<SubscriptionsState>, predicate: (s: SubscriptionsState) => boolean) =>
  SubscriptionRef.changes(ref).pipe(Stream.filter(predicate), Stream.take(1), Stream.runHead, Effect.map((o) => o._tag === "Some" ? o.value : undefined))

/** The ids of the simulator's first `n` generated users. */
export const ids = (n: number) => Array.from({ length: n }, (_, i) => simUserId(i + 1))

/** A first connector run (one account) that subscribes `users` users and stops: what a restart then finds. */
export const firstRunThenStop = (users: number) =>
  Effect.gen(function*() {
    const sim = yield* startSimulator({ users, accounts: 1 })
    const dataDir = yield* tempDir
    const webhook = yield* startWebhook(sim, dataDir)
    const firstRun = yield* Scope.make()
    const first = yield* startConnector(sim, webhook, { accounts: 1 }).pipe(Scope.provide(firstRun))
    yield* first.manager!.setDesiredUsers(ids(users))
    const state = yield* SubscriptionRef.get(first.manager!.state)
    yield* Scope.close(firstRun, Exit.void)
    return { sim, dataDir, webhook, state }
  })
