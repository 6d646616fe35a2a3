/**
 * What the state store holds, as Schemas: tenants, refresh tokens, subscription state, notification certificates and
 * the desired PBX command per user. The stored JSON of the first four is exactly today's file formats (the default
 * tenant keeps its files); each names its secret slots, which are sealed at rest.
 */
import { Schema } from "effect"
import { ConnectorConfig } from "../config/Config.ts"
import { PbxPresenceCommand } from "../domain/PbxPresence.ts"

/** The connector's own id of a tenant (a path segment and directory name), not the Microsoft directory tenant id. */
export const TenantId = Schema.String.check(
  Schema.isPattern(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, {
    message: "Expected a tenant id of lower-case letters, digits and inner hyphens (at most 63), such as contoso-1"
  })
).pipe(Schema.brand("TenantId"))
export type TenantId = typeof TenantId.Type

/** The tenant a single-tenant configuration file becomes; its files stay directly in the data directory. */
export const defaultTenant = TenantId.make("default")

const config = ConnectorConfig.fields

/** A tenant's part of today's configuration: Microsoft tenant and app, accounts, PBX, matching, mapping, timers, PBX → Teams. */
export const TenantConfig = Schema.Struct({
  tenantId: config.tenantId,
  clientId: config.clientId,
  app: config.app,
  accounts: config.accounts,
  graph: config.graph,
  notifications: config.notifications,
  pbx: config.pbx,
  matching: config.matching,
  mapping: config.mapping,
  timers: config.timers,
  admin: config.admin,
  pbxToTeams: config.pbxToTeams
})
export type TenantConfig = typeof TenantConfig.Type

export interface Tenant {
  readonly id: TenantId
  /** Grows by one with every put; a removed and re-added tenant starts again at 1. */
  readonly version: number
  readonly config: TenantConfig
}

export const TenantChange = Schema.Struct({
  kind: Schema.Literals(["added", "updated", "removed"]),
  id: TenantId,
  version: Schema.Number
})
export type TenantChange = typeof TenantChange.Type

/** A delegated account's refresh token (today's accounts/<name>.refresh-token.json). */
export const RefreshToken = Schema.Struct({
  username: Schema.String,
  refreshToken: Schema.RedactedFromValue(Schema.String)
})
export type RefreshToken = typeof RefreshToken.Type

/** One Graph subscription the connector holds: what a restart needs to adopt it. */
export const StoredSubscription = Schema.Struct({
  subscriptionId: Schema.String,
  clientState: Schema.RedactedFromValue(Schema.String),
  expiresAt: Schema.Number,
  /** The rich-notification certificate the subscription names (with resource data only). */
  certificateId: Schema.optionalKey(Schema.String)
})
export type StoredSubscription = typeof StoredSubscription.Type

/** A presence shard: its users, its delegated account and its subscription. */
export const StoredShard = Schema.Struct({
  key: Schema.String,
  account: Schema.String,
  userIds: Schema.Array(Schema.String),
  subscription: Schema.optionalKey(StoredSubscription),
  /** The users the subscription's resource names (the licensed part of `userIds`); absent in older files. */
  subscribedIds: Schema.optionalKey(Schema.Array(Schema.String))
})
export type StoredShard = typeof StoredShard.Type

/** The subscription manager's state (today's subscriptions.json); clientStates are secrets. */
export const SubscriptionState = Schema.Struct({
  version: Schema.Literal(1),
  shards: Schema.Array(StoredShard),
  users: Schema.optionalKey(StoredSubscription)
})
export type SubscriptionState = typeof SubscriptionState.Type

/** No subscriptions yet. */
export const emptySubscriptionState: SubscriptionState = { version: 1, shards: [] }

export const StoredCertificate = Schema.Struct({
  id: Schema.String,
  /** base64 DER */
  certificate: Schema.String,
  /** PKCS#8 PEM */
  privateKey: Schema.RedactedFromValue(Schema.String),
  thumbprint: Schema.String,
  createdAt: Schema.Number,
  notAfter: Schema.Number
})
export type StoredCertificate = typeof StoredCertificate.Type

/** The rich-notification keys and certificates (today's rich-notification-keys.json). */
export const CertificateSet = Schema.Struct({
  currentId: Schema.String,
  certificates: Schema.Array(StoredCertificate)
})
export type CertificateSet = typeof CertificateSet.Type

/**
 * The Teams users holding a presence session of the connector's application (PBX → Teams; today's
 * pbx-to-teams-sessions.json), so that a restart clears the sessions of users no longer in a call. No secrets.
 */
export const PresenceSessionState = Schema.Struct({
  version: Schema.Literal(1),
  /** The application the sessions belong to (clearPresence needs its id as sessionId). */
  sessionId: Schema.String,
  userIds: Schema.Array(Schema.String)
})
export type PresenceSessionState = typeof PresenceSessionState.Type

/** The command the tenant's owner wants on one PBX user; `pbx` is the PBX the user lives on. */
export const DesiredCommand = Schema.Struct({
  pbx: Schema.NonEmptyString,
  guid: Schema.NonEmptyString,
  command: PbxPresenceCommand
})
export type DesiredCommand = typeof DesiredCommand.Type

/** A person of the master's user table as published to the store (src/pbx/directory/PbxUser.ts). */
export const StoredPbxUser = Schema.Struct({
  guid: Schema.String,
  h323: Schema.String,
  cn: Schema.String,
  dn: Schema.String,
  e164: Schema.String,
  emails: Schema.Array(Schema.String),
  h323Email: Schema.optionalKey(Schema.Boolean),
  loc: Schema.String,
  node: Schema.String,
  apps: Schema.Array(Schema.String),
  hide: Schema.Boolean,
  groups: Schema.optionalKey(Schema.Array(Schema.String))
})
export type StoredPbxUser = typeof StoredPbxUser.Type

/** What the master's App object said at its login that the licences depend on (AppLogin, its `info`). */
export const StoredMasterInfo = Schema.Struct({
  /** The App object's name (`info.appobj`, else the login's `sip`). */
  appName: Schema.optionalKey(Schema.String),
  /** The App object's service licences (`info.lics`). */
  lics: Schema.optionalKey(Schema.Number),
  unlicensed: Schema.optionalKey(Schema.Boolean),
  /** Whether the master is logged in on the publishing runner now. */
  loggedIn: Schema.Boolean
})
export type StoredMasterInfo = typeof StoredMasterInfo.Type

/**
 * The master PBX's user directory of one tenant as the runner holding its socket replicated it (docs/scaling.md, "PBX
 * sockets on any runner"): the users once the first load is done (absent before), the master's login facts, who
 * published it and when (the publisher's clock, epoch milliseconds).
 */
export const PbxDirectoryRecord = Schema.Struct({
  pbx: Schema.String,
  users: Schema.optionalKey(Schema.Array(StoredPbxUser)),
  master: StoredMasterInfo,
  runner: Schema.String,
  publishedAt: Schema.Number
})
export type PbxDirectoryRecord = typeof PbxDirectoryRecord.Type

/** A desired command with its version: versions only grow, so a newer state is never overtaken by an older one. */
export interface VersionedCommand extends DesiredCommand {
  readonly version: number
  /** For a pending read: milliseconds since the row was written (PostgreSQL only; docs/scaling.md, "Where the time goes"). */
  readonly waited?: number
  /** For a put's row: its PBX's socket lease as the put saw it (PostgreSQL only; docs/scaling.md, "PBX writes"). */
  readonly lease?: PutLease
}

/**
 * A PBX's socket lease as a put saw it, in the put's own statement: its holder and epoch, and the highest version of the
 * PBX's pending rows of users the put did not write (0: none). A holder on the lease with that epoch that has read that
 * far hands the put's rows to its writer without reading them (docs/scaling.md, "PBX writes").
 */
export interface PutLease {
  readonly runner: string
  readonly epoch: number
  readonly unread: number
}

/**
 * A user's latest desired command with the runner holding its PBX's socket lease (undefined: never leased): what a
 * socket holder checks before it sends a command again (docs/scaling.md, "One writer per user").
 */
export interface HeldCommand extends VersionedCommand {
  readonly holder: string | undefined
}

export interface Confirmation {
  readonly guid: string
  readonly version: number
}

export interface TenantOwner {
  readonly runner: string
  /** The fencing token: grows with every claim; writes carrying an older epoch are refused. */
  readonly epoch: number
}

/**
 * The lease of one PBX's socket (docs/scaling.md, "One writer per PBX"): taken by the runner that accepts the PBX's
 * login, with an epoch that grows on every take; a send or confirmation carrying an older epoch is refused.
 */
export interface PbxLease {
  readonly pbx: string
  readonly runner: string
  readonly epoch: number
}

/** A place in a stored record that holds a secret, and the name its seal is bound to. */
export interface SecretSlot {
  readonly path: ReadonlyArray<string | number>
  readonly kind: "config" | "refresh-token" | "private-key" | "client-state"
  readonly name: string
}

const record = (value: unknown): Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value) ? value as Record<string, unknown> : {}
const list = (value: unknown): ReadonlyArray<unknown> => (Array.isArray(value) ? value : [])
const text = (value: unknown, fallback: string): string => (typeof value === "string" ? value : fallback)

/** The secret slots of each stored (encoded) record. They are computed from untrusted JSON, so every access is guarded. */
export const secretSlots = {
  tenant: (stored: unknown): ReadonlyArray<SecretSlot> => [
    { path: ["app", "clientSecret"], kind: "config", name: "app.clientSecret" },
    { path: ["pbx", "appPassword"], kind: "config", name: "pbx.appPassword" },
    { path: ["admin", "password"], kind: "config", name: "admin.password" },
    { path: ["pbxToTeams", "app", "clientSecret"], kind: "config", name: "pbxToTeams.app.clientSecret" },
    ...list(record(stored)["accounts"]).map((account, i): SecretSlot => ({
      path: ["accounts", i, "password"],
      kind: "config",
      name: `accounts.${text(record(account)["name"], String(i))}.password`
    }))
  ],
  refreshToken: (account: string) => (_stored: unknown): ReadonlyArray<SecretSlot> => [
    { path: ["refreshToken"], kind: "refresh-token", name: account }
  ],
  subscriptions: (stored: unknown): ReadonlyArray<SecretSlot> => {
    const clientState = (subscription: unknown, path: ReadonlyArray<string | number>): ReadonlyArray<SecretSlot> =>
      subscription === undefined ? [] : [{
        path: [...path, "clientState"],
        kind: "client-state",
        name: text(record(subscription)["subscriptionId"], "?")
      }]
    const state = record(stored)
    return [
      ...list(state["shards"]).flatMap((shard, i) => clientState(record(shard)["subscription"], ["shards", i, "subscription"])),
      ...clientState(state["users"], ["users"])
    ]
  },
  certificates: (stored: unknown): ReadonlyArray<SecretSlot> =>
    list(record(stored)["certificates"]).map((certificate, i): SecretSlot => ({
      path: ["certificates", i, "privateKey"],
      kind: "private-key",
      name: text(record(certificate)["id"], String(i))
    }))
}
