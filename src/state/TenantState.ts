/**
 * One tenant's part of the state store: what the Graph side keeps between restarts (refresh tokens, subscription state,
 * rich-notification certificates, PBX → Teams presence sessions, the last command per PBX user), bound to its tenant id. A connector for one tenant provides it for `default`;
 * the Graph side knows nothing else of the store, its backend or the tenant.
 */
import { Context, Effect, Layer, type Option } from "effect"
import type {
  CertificateSet,
  Confirmation,
  DesiredCommand,
  PresenceSessionState,
  RefreshToken,
  SubscriptionState,
  TenantId,
  TenantOwner,
  VersionedCommand
} from "./Records.ts"
import { StateStore } from "./StateStore.ts"
import type { StateStoreError } from "./StateStoreError.ts"

type Result<A> = Effect.Effect<A, StateStoreError>

export class TenantState extends Context.Service<TenantState, {
  readonly tenant: TenantId
  readonly refreshTokens: {
    get(account: string): Result<Option.Option<RefreshToken>>
    put(account: string, token: RefreshToken): Result<void>
  }
  readonly subscriptions: {
    /** None: nothing stored yet (a new installation). */
    readonly load: Result<Option.Option<SubscriptionState>>
    save(state: SubscriptionState): Result<void>
  }
  readonly certificates: {
    /** None: nothing stored yet. A record that cannot be read is an error, never None. */
    readonly load: Result<Option.Option<CertificateSet>>
    save(set: CertificateSet): Result<void>
  }
  readonly presenceSessions: {
    /** None: nothing stored yet. */
    readonly load: Result<Option.Option<PresenceSessionState>>
    save(state: PresenceSessionState): Result<void>
  }
  /** Makes this process the tenant's owner with the next epoch: the fencing token its desired writes carry. */
  claimOwner(runner: string): Result<TenantOwner>
  /** The command per PBX user (StateStore.desired, for this tenant). */
  readonly desired: {
    put(epoch: number, commands: ReadonlyArray<DesiredCommand>): Result<ReadonlyArray<VersionedCommand>>
    confirm(confirmations: ReadonlyArray<Confirmation>): Result<void>
    pending(pbx: string, limit?: number): Result<ReadonlyArray<VersionedCommand>>
    confirmed: Result<ReadonlyArray<VersionedCommand>>
  }
}>()("teams-presence-connector/state/TenantState") {
  static readonly make = (store: StateStore["Service"], tenant: TenantId): TenantState["Service"] =>
    TenantState.of({
      tenant,
      refreshTokens: {
        get: (account) => store.refreshTokens.get(tenant, account),
        put: (account, token) => store.refreshTokens.put(tenant, account, token)
      },
      subscriptions: {
        load: store.subscriptions.load(tenant),
        save: (state) => store.subscriptions.save(tenant, state)
      },
      certificates: {
        load: store.certificates.load(tenant),
        save: (set) => store.certificates.save(tenant, set)
      },
      presenceSessions: {
        load: store.presenceSessions.load(tenant),
        save: (state) => store.presenceSessions.save(tenant, state)
      },
      claimOwner: (runner) => store.owners.claim(tenant, runner),
      desired: {
        put: (epoch, commands) => store.desired.put(tenant, epoch, commands),
        confirm: (confirmations) => store.desired.confirm(tenant, confirmations),
        pending: (pbx, limit) => store.desired.pending(tenant, pbx, limit),
        confirmed: store.desired.confirmed(tenant)
      }
    })

  /** The tenant's state in the StateStore the layer is given. */
  static readonly layer = (tenant: TenantId) =>
    Layer.effect(TenantState, Effect.gen(function*() {
      return TenantState.make(yield* StateStore, tenant)
    }))
}
