/**
 * What the state store offers, apart from the service that carries it: the backends (files, memory, PostgreSQL) build
 * this shape and StateStore.ts wires them, so neither imports the other.
 */
import type { Effect, Option, Stream } from "effect"
import type {
  CertificateSet,
  Confirmation,
  DesiredCommand,
  HeldCommand,
  PbxDirectoryRecord,
  PbxLease,
  PresenceSessionState,
  RefreshToken,
  SubscriptionState,
  Tenant,
  TenantChange,
  TenantConfig,
  TenantId,
  TenantOwner,
  VersionedCommand
} from "./Records.ts"
import type { StateStoreError } from "./StateStoreError.ts"

type Result<A> = Effect.Effect<A, StateStoreError>

/** A wake-up for whoever sends desired commands: one PBX has news, or (after a reconnect) everything should be re-read. */
export type DesiredWakeup =
  | {
    readonly kind: "changed"
    readonly tenant: TenantId
    readonly pbx: string
    /** When it was sent, by the database's clock (milliseconds since the epoch; PostgreSQL only). */
    readonly at?: number
    /** When its NOTIFY reached this process (Clock milliseconds; with `at`). */
    readonly receivedAt?: number
    /**
     * The highest version a put wrote for this PBX (PostgreSQL's puts): a sender that has read up to it already has
     * nothing new to read for this wake-up (its own runner's owner woke it at once, before the NOTIFY came back).
     */
    readonly version?: number
    /**
     * A put's rows for this PBX, each with the PBX's lease as the put saw it: a sender holding that lease hands them over
     * without reading (DesiredSender.ts). From the owner's own put on its runner, and from a put's NOTIFY (PostgreSQL)
     * when the PBX was leased and the rows fit in its payload, so the holder on another runner need not read either.
     */
    readonly put?: ReadonlyArray<VersionedCommand>
    /**
     * A put's NOTIFY (PostgreSQL): the runner of the owner that put it and the PBX's lease as the put saw it. A sender on
     * that runner holding that lease gets the put's rows from its owner directly (`put`) and need not read for it.
     */
    readonly by?: { readonly owner: string; readonly holder: string | undefined; readonly lease: number | undefined }
  }
  | { readonly kind: "resync" }

/** A tenant's published directory changed, or (after a reconnect) every reader should read again. */
export type DirectoryWakeup = { readonly kind: "changed"; readonly tenant: TenantId } | { readonly kind: "resync" }

export interface RekeyReport {
  /** Secrets sealed again with the current key (they were sealed with a previous key, or in clear in the files). */
  readonly resealed: number
  /** Records looked at (a tenant, a token, a subscription state, a certificate set). */
  readonly records: number
}

export interface StateStoreShape {
  readonly backend: "files" | "postgres"
  readonly tenants: {
    readonly list: Result<ReadonlyArray<Tenant>>
    get(id: TenantId): Result<Option.Option<Tenant>>
    /** Adds or replaces a tenant's configuration; the result carries its new version. */
    put(id: TenantId, config: TenantConfig): Result<Tenant>
    /** Removes the tenant with all its state (tokens, subscriptions, certificates, desired commands); false if unknown. */
    remove(id: TenantId): Result<boolean>
    /**
     * Every tenant present when the stream starts (as `added`), then each change, also those made by other processes.
     * Changes are read from the store on each wake-up, so a burst may arrive folded (latest version wins).
     */
    readonly changes: Stream.Stream<TenantChange, StateStoreError>
  }
  readonly refreshTokens: {
    get(tenant: TenantId, account: string): Result<Option.Option<RefreshToken>>
    put(tenant: TenantId, account: string, token: RefreshToken): Result<void>
    remove(tenant: TenantId, account: string): Result<void>
    accounts(tenant: TenantId): Result<ReadonlyArray<string>>
  }
  readonly subscriptions: {
    load(tenant: TenantId): Result<Option.Option<SubscriptionState>>
    save(tenant: TenantId, state: SubscriptionState): Result<void>
  }
  readonly certificates: {
    load(tenant: TenantId): Result<Option.Option<CertificateSet>>
    save(tenant: TenantId, set: CertificateSet): Result<void>
  }
  /** The Teams users holding a PBX → Teams presence session (no secrets). */
  readonly presenceSessions: {
    load(tenant: TenantId): Result<Option.Option<PresenceSessionState>>
    save(tenant: TenantId, state: PresenceSessionState): Result<void>
  }
  readonly desired: {
    /**
     * Latest wins per PBX user: a command that differs from the stored one (or a new PBX) gets a new, larger version;
     * an unchanged one is left as it is. Refused (Fenced) unless `epoch` is the tenant's current owner epoch.
     * Returns the rows that changed.
     */
    put(tenant: TenantId, epoch: number, commands: ReadonlyArray<DesiredCommand>): Result<ReadonlyArray<VersionedCommand>>
    /**
     * The commands for one PBX newer than what it confirmed, oldest version first. With `lease` (the epoch of the
     * caller's lease of that PBX's socket) refused (Fenced) unless it is the current one, in the same statement. With
     * `after`, only versions above it (a sender's bound: what it already handed to its writer, or a page's last version).
     */
    pending(tenant: TenantId, pbx: string, limit?: number, lease?: number, after?: number): Result<ReadonlyArray<VersionedCommand>>
    /**
     * Records that the PBX applied these versions; an older confirmation never lowers a newer one. With `lease`, only
     * that PBX's rows, and refused (Fenced) unless its epoch is the PBX's current lease, in the same statement.
     */
    confirm(tenant: TenantId, confirmations: ReadonlyArray<Confirmation>, lease?: Pick<PbxLease, "pbx" | "epoch">): Result<void>
    /**
     * Takes the lease of one PBX's socket for `runner` (it accepted the PBX's login): the next epoch. Wakes the PBX's
     * senders, so a former holder finds its lease gone.
     */
    lease(tenant: TenantId, pbx: string, runner: string): Result<PbxLease>
    /** The commands the PBXs confirmed in their latest version: what they hold, as far as the store knows. */
    confirmed(tenant: TenantId): Result<ReadonlyArray<VersionedCommand>>
    /**
     * The latest command of each of these users that has one (whichever PBX it is keyed to), with the runner holding
     * that PBX's socket lease: one read for a batch of a writer's re-sends (docs/scaling.md, "One writer per user").
     */
    latest(tenant: TenantId, guids: ReadonlyArray<string>): Result<ReadonlyArray<HeldCommand>>
    /** Marks everything of one PBX unconfirmed (a PBX that lost its state, e.g. after a restart). */
    resend(tenant: TenantId, pbx: string): Result<void>
    /**
     * Wake-ups for every process: lease takes, resends and puts on a PBX whose socket nobody holds. A put on a PBX whose
     * socket a runner holds wakes that runner only (`heldWakeups`; PostgreSQL), so that the others are not woken for it.
     */
    readonly wakeups: Stream.Stream<DesiredWakeup, StateStoreError>
    /** The puts on the PBXs whose socket `runner` holds (PostgreSQL); with one process everything is on `wakeups`. */
    heldWakeups(runner: string): Stream.Stream<DesiredWakeup, StateStoreError>
  }
  /**
   * The master PBX's user directory per tenant and PBX, published by whichever runner holds the master's socket and
   * read by the tenant's owner (its planner). Latest wins; `wakeups` names a tenant whose directory was published.
   */
  readonly directory: {
    publish(tenant: TenantId, record: PbxDirectoryRecord): Result<void>
    load(tenant: TenantId, pbx: string): Result<Option.Option<PbxDirectoryRecord>>
    /**
     * What changes with every publish of the tenant's directory of `pbx` (none before the first): a reader that holds
     * a record compares it instead of loading and comparing every user again.
     */
    stamp(tenant: TenantId, pbx: string): Result<Option.Option<string>>
    readonly wakeups: Stream.Stream<DirectoryWakeup, StateStoreError>
  }
  readonly owners: {
    /** Makes `runner` the tenant's owner with the next epoch (the fencing token its writes carry). */
    claim(tenant: TenantId, runner: string): Result<TenantOwner>
    get(tenant: TenantId): Result<Option.Option<TenantOwner>>
  }
  /** Seals every secret with the current state key (after a key rotation; docs/state.md). */
  readonly rekey: Result<RekeyReport>
}
