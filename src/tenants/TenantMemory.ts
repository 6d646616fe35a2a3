/**
 * What the connectors of a stored tenant in this process last knew of its Graph subscriptions and refresh tokens, kept
 * in memory beside the store until the tenant is removed, so that a removal deletes its subscriptions whatever state
 * the tenant is in. The store forgets a removed tenant's records at once; an update's restart hands the subscriptions
 * from the old connector (which stops without deleting them) to the new one (which adopts them from the store). A
 * removal read in that gap — the old connector stopped, the new one not started or still starting — finds no
 * connector holding them: they are deleted here, directly at Graph with the tenant's last credentials.
 *
 * A tenant's state goes to the store as before and is remembered on the way (read or written); where the store has
 * none (the tenant was removed meanwhile) the remembered state is read instead, so a connector starting in the gap
 * adopts the subscriptions and its own stop, deleting them, takes them along.
 */
import { Duration, Effect, Layer, Option } from "effect"
import { NodeHttpClient } from "@effect/platform-node"
import type { ConnectorConfig } from "../config/Config.ts"
import { settingsFromConfig } from "../config/Settings.ts"
import { GraphClient } from "../graph/client/GraphClient.ts"
import { accountRef, type CredentialRef, GraphConfig } from "../graph/client/GraphSettings.ts"
import { TokenService } from "../graph/auth/TokenService.ts"
import { describeError, isNotFound, SubscriptionApi } from "../graph/subscriptions/SubscriptionApi.ts"
import type { RefreshToken, SubscriptionState, Tenant, TenantId } from "../state/Records.ts"
import type { StateStore } from "../state/StateStore.ts"
import { TenantState } from "../state/TenantState.ts"
import { storedTenantConfig } from "./TenantRuntime.ts"

interface Remembered {
  /** The configuration the tenant last ran with: its credentials delete what its connectors left. */
  tenant: Tenant | undefined
  subscriptions: Option.Option<SubscriptionState>
  readonly refreshTokens: Map<string, RefreshToken>
}

/** How long deleting a removed tenant's left subscriptions may take before they are left to expire at Graph. */
const deletionTimeout = Duration.seconds(30)

/** The subscriptions a state names, each with the credential that deletes it. */
const subscriptionsIn = (state: SubscriptionState, usersCredential: CredentialRef) => [
  ...state.shards.flatMap((shard) => (shard.subscription === undefined ? [] : [{ credential: accountRef(shard.account), id: shard.subscription.subscriptionId }])),
  ...(state.users === undefined ? [] : [{ credential: usersCredential, id: state.users.subscriptionId }])
]

export const makeTenantMemory = (store: StateStore["Service"], process: ConnectorConfig) => {
  const memory = new Map<TenantId, Remembered>()
  const entry = (id: TenantId): Remembered => {
    const found = memory.get(id)
    if (found !== undefined) return found
    const fresh: Remembered = { tenant: undefined, subscriptions: Option.none(), refreshTokens: new Map() }
    memory.set(id, fresh)
    return fresh
  }

  /** The tenant's state: the store's, remembered on the way; the remembered one where the store has none. */
  const stateOf = (id: TenantId): TenantState["Service"] => {
    const stored = TenantState.make(store, id)
    return TenantState.of({
      ...stored,
      refreshTokens: {
        get: (account) =>
          Effect.map(stored.refreshTokens.get(account), (found) => {
            const remembered = entry(id).refreshTokens
            if (Option.isSome(found)) remembered.set(account, found.value)
            return Option.orElse(found, () => Option.fromUndefinedOr(remembered.get(account)))
          }),
        put: (account, token) => Effect.andThen(Effect.sync(() => entry(id).refreshTokens.set(account, token)), stored.refreshTokens.put(account, token))
      },
      subscriptions: {
        load: Effect.map(stored.subscriptions.load, (found) => {
          const remembered = entry(id)
          if (Option.isSome(found)) remembered.subscriptions = found
          return Option.orElse(found, () => remembered.subscriptions)
        }),
        save: (state) => Effect.andThen(Effect.sync(() => (entry(id).subscriptions = Option.some(state))), stored.subscriptions.save(state))
      }
    })
  }

  /** The tenant is about to run with this configuration. */
  const running = (tenant: Tenant) => Effect.sync(() => (entry(tenant.id).tenant = tenant))

  /**
   * The tenant was removed and its work has stopped: the subscriptions its connectors left (none when the last one
   * stopped deleting them) are deleted at Graph, each failure logged; then the tenant is forgotten. Credentials that no
   * longer work (a wrong secret) delete nothing: the subscriptions expire at Graph within their lifetime.
   */
  const removed = Effect.fn("TenantMemory.removed")(function*(id: TenantId) {
    const remembered = memory.get(id)
    memory.delete(id)
    if (remembered?.tenant === undefined || Option.isNone(remembered.subscriptions)) return
    const settings = yield* settingsFromConfig(storedTenantConfig(process, id, remembered.tenant.config))
    const left = subscriptionsIn(remembered.subscriptions.value, settings.subscriptions.usersCredential)
    if (left.length === 0) return
    yield* Effect.logInfo(`tenant ${id}: removed while no connector held its ${left.length} Graph subscriptions; deleting them`)
    // The removed tenant's remembered tokens: the store has forgotten them.
    const state = { ...stateOf(id), refreshTokens: { get: (account: string) => Effect.succeed(Option.fromUndefinedOr(remembered.refreshTokens.get(account))), put: () => Effect.void } }
    const graph = SubscriptionApi.layer.pipe(
      Layer.provide(GraphClient.layerWith({ maxRetries: 1 })),
      Layer.provide(TokenService.layer),
      Layer.provide(NodeHttpClient.layerUndici),
      Layer.provide(Layer.succeed(GraphConfig, settings.graph)),
      Layer.provide(Layer.succeed(TenantState, TenantState.of(state)))
    )
    yield* Effect.forEach(left, ({ credential, id: subscription }) =>
      Effect.gen(function*() {
        return yield* (yield* SubscriptionApi).remove(credential, subscription)
      }).pipe(
        Effect.catch((error) => (isNotFound(error) ? Effect.void : Effect.logWarning(`could not delete subscription ${subscription}: ${describeError(error)}; it expires at Graph`)))
      ), { discard: true }).pipe(Effect.provide(graph))
  }, (effect, id) =>
    effect.pipe(
      Effect.timeoutOrElse({ duration: deletionTimeout, orElse: () => Effect.logWarning(`tenant ${id}: deleting its left subscriptions took over ${Duration.format(deletionTimeout)}; they expire at Graph`) }),
      Effect.catchCause((cause) => Effect.logWarning(`tenant ${id}: its left subscriptions could not be deleted; they expire at Graph`, cause)),
      Effect.annotateLogs({ tenant: id })
    ))

  return { stateOf, running, removed }
}
