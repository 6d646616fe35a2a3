/**
 * What the administrator sees: one snapshot of the connector's state (lights, counts, users, recent errors), kept in a
 * SubscriptionRef so that the status page, `/api/status`, `/readyz` and the server-sent events read the same value.
 * The connector writes it; the HTTP routes only read it.
 */
import { Context, Effect, Layer, Stream, SubscriptionRef } from "effect"

/** Green: working. Amber: degraded, being retried (e.g. Graph throttling reads). Red: not working; needs attention. */
export type LightState = "green" | "amber" | "red"

export interface Light {
  readonly state: LightState
  /** What is the matter, in words (status/Explain.ts); no clock time: the page writes those from `since` / `until`. */
  readonly reason: string
  /** What to do about a red light. */
  readonly fix?: string | undefined
  /** The technical cause the reason explains (an error code, a close code), shown on request. */
  readonly detail?: string | undefined
  /** Epoch milliseconds since which the state holds (connected since, failing since). */
  readonly since?: number | undefined
  /** Epoch milliseconds until which it holds (a subscription's expiry). */
  readonly until?: number | undefined
}

export interface PbxLight extends Light {
  readonly pbx: string
  readonly isMaster: boolean
  readonly apis: ReadonlyArray<string>
  readonly missingApis: ReadonlyArray<string>
  readonly lics?: number | undefined
  readonly connectedAt?: number | undefined
}

export interface CredentialLight extends Light {
  readonly label: string
  readonly kind: "app" | "account"
  readonly expiresAt?: number | undefined
}

export interface ShardLight extends Light {
  readonly key: string
  readonly account: string
  readonly userCount: number
  readonly status: string
  readonly expiresAt?: number | undefined
  readonly lastRenewalAt?: number | undefined
}

export interface UserRow {
  readonly teamsId: string
  readonly name: string
  readonly upn: string
  readonly pbxGuid: string
  readonly pbxName: string
  readonly pbx: string
  readonly licensed: boolean
  readonly availability: string
  readonly activity: string
  readonly written: string
  readonly lastChangeAt?: number | undefined
  readonly delayMs?: number | undefined
}

export interface RecentError {
  readonly at: number
  readonly level: string
  readonly message: string
  readonly fix?: string | undefined
  /** The technical text the message explains (status/Explain.ts). */
  readonly detail?: string | undefined
}

export interface Counts {
  /** Teams users to match: without the technical accounts, which are counted on their own. */
  readonly teamsUsers: number
  readonly technicalAccounts: number
  readonly pbxUsers: number
  readonly matched: number
  readonly licensed: number
  readonly unlicensed: number
  readonly unmatched: number
  readonly ambiguous: number
}

/** How users are licensed (pbx.licensing) and how many are served; the App object's own licence fields for information. */
export interface LicensingStatus {
  readonly mode: "appRight" | "appLicence" | "all"
  /** The app name looked for in the users' apps (appRight), or the licence asked for, e.g. `App(x)` (appLicence). */
  readonly name?: string | undefined
  readonly licensed: number
  readonly unlicensed: number
  /** Matched users whose licence is not known now (the PBX did not answer, or cannot be asked). */
  readonly unknown: number
  /** The master App object's `info.lics` (service licences) and `info.unlicensed`, as the PBX sent them. */
  readonly serviceLicences?: number | undefined
  readonly unlicensedFlag?: boolean | undefined
  /** pbx.maxUsers in force. */
  readonly cap?: number | undefined
  readonly problem?: { readonly message: string; readonly fix: string } | undefined
}

/** The PBX → Teams direction (`pbxToTeams`), present when it is on; its light does not decide readiness. */
export interface PbxToTeamsStatus {
  readonly light: Light
  readonly source: "presence" | "rcc"
  /** Served users whose calls are watched, and of them those the PBX reports on. */
  readonly watched: number
  readonly live: number
  /** Users in a PBX call: since when, and whether Teams shows it yet (the debounce passed). */
  readonly calls: ReadonlyArray<{ readonly teamsId: string; readonly since: number; readonly shown: boolean }>
  /** Presence sessions Graph holds for the connector. */
  readonly sessions: number
}

/** One runner of a cluster (`run --cluster`) as the status page shows it (cluster/RunnerRegistry.ts). */
export interface ClusterRunnerView {
  /** The runner's id: its public HTTP address. */
  readonly id: string
  /** False when the runner has not reported for a while (killed or cut off). */
  readonly alive: boolean
  readonly startedAt: number
  readonly seenAt: number
  readonly tenants: ReadonlyArray<{
    readonly tenant: string
    readonly epoch: number
    readonly since: number
    /** Where the tenant's PBX sockets are served (cluster/SocketMode.ts); absent from a runner of an older version. */
    readonly sockets?: "any" | "owner" | undefined
  }>
  /** The PBX websockets the runner's tenants hold. */
  readonly pbxSockets: ReadonlyArray<{
    readonly tenant: string
    readonly pbx: string
    readonly master: boolean
    readonly loggedIn: boolean
    readonly since?: number | undefined
  }>
}

/** The cluster the connector runs in, present in cluster mode only. */
export interface ClusterView {
  /** The runner that serves this tenant (and this page) now. */
  readonly runner: string
  readonly runners: ReadonlyArray<ClusterRunnerView>
}

export interface StatusSnapshot {
  readonly version: string
  readonly startedAt: number
  /** The connector's clock when the snapshot was made: the page measures "… ago" against it, not the browser's clock. */
  readonly now: number
  readonly mode: "push" | "poll"
  readonly lights: {
    readonly masterPbx: Light
    readonly authentication: Light
    readonly presenceSubscription: Light
    readonly userSubscription: Light
  }
  readonly pbxs: ReadonlyArray<PbxLight>
  readonly credentials: ReadonlyArray<CredentialLight>
  readonly shards: ReadonlyArray<ShardLight>
  /** The rich-notification certificate (push mode): expiry, last rotation, older keys still held for decryption. */
  readonly certificate?: {
    readonly id: string
    readonly notAfter: number
    readonly lastRotationAt?: number
    readonly previousKeys: number
    readonly error?: string
  } | undefined
  readonly counts: Counts
  readonly licensing?: LicensingStatus | undefined
  readonly users: ReadonlyArray<UserRow>
  readonly unlicensed: ReadonlyArray<{ readonly name: string; readonly reason: string }>
  readonly unmatched: ReadonlyArray<{ readonly side: "teams" | "pbx"; readonly name: string }>
  readonly ambiguous: ReadonlyArray<{ readonly key: string; readonly reason: string }>
  readonly errors: ReadonlyArray<RecentError>
  readonly pbxToTeams?: PbxToTeamsStatus | undefined
  readonly demo?: { readonly graphSimulator: string; readonly pbxSimulator: string } | undefined
  readonly cluster?: ClusterView | undefined
}

const red = (reason: string): Light => ({ state: "red", reason })

export const initialSnapshot = (options: { version: string; startedAt: number; mode: "push" | "poll" }): StatusSnapshot => ({
  ...options,
  now: options.startedAt,
  lights: {
    masterPbx: red("the master PBX has not connected yet"),
    authentication: red("not signed in yet"),
    presenceSubscription: red("no presence subscription yet"),
    userSubscription: red("no users subscription yet")
  },
  pbxs: [],
  credentials: [],
  shards: [],
  counts: { teamsUsers: 0, technicalAccounts: 0, pbxUsers: 0, matched: 0, licensed: 0, unlicensed: 0, unmatched: 0, ambiguous: 0 },
  users: [],
  unlicensed: [],
  unmatched: [],
  ambiguous: [],
  errors: []
})

export const allGreen = (snapshot: StatusSnapshot): boolean =>
  Object.values(snapshot.lights).every((light) => light.state === "green")

/** Ready (`/readyz`): no light is red; an amber light is a degradation the connector is working through. */
export const noneRed = (snapshot: StatusSnapshot): boolean => Object.values(snapshot.lights).every((light) => light.state !== "red")

export class StatusBoard extends Context.Service<StatusBoard, {
  readonly get: Effect.Effect<StatusSnapshot>
  readonly update: (f: (snapshot: StatusSnapshot) => StatusSnapshot) => Effect.Effect<void>
  readonly changes: Stream.Stream<StatusSnapshot>
}>()("teams-presence-connector/status/StatusBoard") {
  static readonly make = (initial: StatusSnapshot) =>
    Effect.map(SubscriptionRef.make(initial), (ref) =>
      StatusBoard.of({
        get: SubscriptionRef.get(ref),
        update: (f) => SubscriptionRef.update(ref, f),
        changes: SubscriptionRef.changes(ref)
      }))

  static readonly layer = (initial: StatusSnapshot) => Layer.effect(StatusBoard, StatusBoard.make(initial))
}
