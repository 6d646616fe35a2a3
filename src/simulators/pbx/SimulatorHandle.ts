/**
 * What a running PBX simulator offers tests, the demo and its HTTP control API (ControlApi.ts): its state, user edits,
 * faults, and a wait on the next change of the system.
 */
import { type Effect, Schema } from "effect"
import type { Replication } from "./SimReplication.ts"
import type { CheckAppLicRecord, PresenceEntry, SetPresenceRecord, SimCall, SimUser } from "./SimulatorModel.ts"

export interface SimPbxStatus {
  readonly name: string
  readonly isMaster: boolean
  readonly connected: boolean
  readonly loggedIn: boolean
  /** Logins the connector answered with ok:false. */
  readonly loginsRefused: number
  /** Successful logins so far (a reconnect adds one). */
  readonly logins: number
  /** KeepAlive messages received from the connector (an app service never sends one: this stays 0). */
  readonly keepAlivesReceived: number
  /** AppInfoResult answers to the AppInfo the PBX asks after login, the latest last. */
  readonly appInfoResults: ReadonlyArray<unknown>
  /** KeepAlive messages this PBX sent, as the AppWebsocket client does after `keepAliveMs` without traffic. */
  readonly keepAlivesSent: number
  /** What the connector's last ReplicateStart asked for. */
  readonly replication?: Replication["request"]
  /** ReplicateStart messages received over all connections (a restarted replication adds one). */
  readonly replicateStarts: number
  /** ReplicateNext messages received over all connections. */
  readonly replicateNexts: number
  /** ReplicateNext left unanswered by the stall fault. */
  readonly replicateNextsUnanswered: number
}

export class SimulatorTimeout extends Schema.TaggedError<SimulatorTimeout>()("SimulatorTimeout", {
  message: Schema.String
}) {}

export class SimulatorError extends Schema.TaggedError<SimulatorError>()("SimulatorError", {
  message: Schema.String
}) {}

export interface PbxSimulatorHandle {
  /** Base URL of the HTTP control API, when one was started. */
  readonly controlUrl: string | undefined
  readonly status: Effect.Effect<ReadonlyArray<SimPbxStatus>>
  readonly users: Effect.Effect<ReadonlyArray<SimUser>>
  /** Adds or replaces a user (on `home`, default the master); pushes ReplicateAdd / ReplicateUpdate. */
  readonly upsertUser: (user: SimUser, home?: string) => Effect.Effect<void>
  /**
   * Sets the App licences a user holds (what CheckAppLic answers) without touching the user object, as when the
   * licence comes from a config template: no replication push, the connector learns it at its next licence check.
   */
  readonly setAppLicences: (guid: string, licences: ReadonlyArray<string>) => Effect.Effect<void, SimulatorError>
  /** Removes a user; pushes ReplicateDel. */
  readonly removeUser: (guid: string) => Effect.Effect<void>
  /** Sets the App object's licence count; the connector sees it at the PBX's next login. */
  readonly setLicences: (pbx: string, lics: number) => Effect.Effect<void, SimulatorError>
  readonly setApis: (pbx: string, apis: ReadonlyArray<string>) => Effect.Effect<void, SimulatorError>
  /**
   * Fault: the PBX replicates every object of its table (waiting queues, trunks, …), whatever types the consumer's
   * ReplicateStart asks for, as an older firmware might; applies from the next ReplicateStart.
   */
  readonly setReplicateAllObjects: (pbx: string, on: boolean) => Effect.Effect<void, SimulatorError>
  /** Fault: the PBX leaves the next `count` ReplicateNext unanswered (a stall), then answers again. */
  readonly stallReplication: (pbx: string, count?: number) => Effect.Effect<void, SimulatorError>
  /** A user's presence list, newest first (what phones and myApps show). */
  readonly presence: (guid: string) => Effect.Effect<ReadonlyArray<PresenceEntry>>
  /** Every SetPresence received, in order. */
  readonly setPresenceLog: Effect.Effect<ReadonlyArray<SetPresenceRecord>>
  /** PbxAdminApi CheckAppLic: answer after `delayMs`, or never for the users named (by h323) in `unanswered`. */
  readonly setCheckAppLicBehaviour: (
    pbx: string,
    behaviour: { readonly delayMs?: number; readonly unanswered?: ReadonlyArray<string> }
  ) => Effect.Effect<void, SimulatorError>
  readonly drop: (pbx: string, options?: { readonly reconnect?: boolean }) => Effect.Effect<void, SimulatorError>
  readonly reconnect: (pbx: string) => Effect.Effect<void, SimulatorError>
  /** Refuse SetPresence with `errorText` (undefined = accept again), and/or delay the answers. */
  readonly setPresenceBehaviour: (
    pbx: string,
    behaviour: { readonly refuse?: string | undefined; readonly delayMs?: number }
  ) => Effect.Effect<void, SimulatorError>
  /**
   * Places a call for a user (ringing at the user, or already connected): while it lasts the PBX shows the user
   * on the phone to watchers with that right, and RCC monitors get CallInfo. Answers the call's id.
   */
  readonly placeCall: (guid: string, options?: { readonly state?: SimCall["state"] }) => Effect.Effect<number, SimulatorError>
  /** Connects a ringing call, or puts a call on hold / retrieves it. */
  readonly updateCall: (id: number, change: { readonly state?: SimCall["state"]; readonly hold?: boolean }) => Effect.Effect<void, SimulatorError>
  /** Ends a call (released). */
  readonly endCall: (id: number) => Effect.Effect<void, SimulatorError>
  /** Calls in progress. */
  readonly calls: Effect.Effect<ReadonlyArray<SimCall>>
  /** Sends a frame exactly as given on a PBX's connection. */
  readonly sendRaw: (pbx: string, text: string) => Effect.Effect<void, SimulatorError>
  /** Waits until `check` returns a value (re-checked after every simulator change). */
  readonly waitFor: <A>(check: () => A | undefined, timeoutMs?: number) => Effect.Effect<A, SimulatorTimeout>
  /** Synchronous views for `waitFor` conditions. */
  readonly peek: {
    readonly status: () => ReadonlyArray<SimPbxStatus>
    readonly presence: (guid: string) => ReadonlyArray<PresenceEntry>
    readonly setPresenceLog: () => ReadonlyArray<SetPresenceRecord>
    readonly checkAppLicLog: () => ReadonlyArray<CheckAppLicRecord>
    readonly calls: () => ReadonlyArray<SimCall>
    /** Requests to watch a user's calls (SubscribePresence, UserInitialize) and the PBX each reached. */
    readonly watchLog: () => ReadonlyArray<{ readonly pbx: string; readonly mt: string; readonly guid: string | undefined }>
  }
}
