/**
 * The innovaphone PBX simulator: one or more PBXs (master + slaves) of one system, each connecting to the connector's
 * app service with its own App object. Tests and the demo drive it through the handle or its HTTP control API
 * (docs/simulator-pbx.md).
 */
import { Clock, Effect, Redacted, Schema, type Scope } from "effect"
import { startControlServer } from "./ControlApi.ts"
import type { CheckAppLicRecord } from "./SimAdminApi.ts"
import { type PresenceEntry, type SetPresenceRecord, type SimCall, type SimUser, SystemModel } from "./SimulatorModel.ts"
import { redactedPassword, SimulatedPbx, type SimPbxStatus } from "./SimulatedPbx.ts"

export type { CheckAppLicRecord, PresenceEntry, SetPresenceRecord, SimCall, SimPbxStatus, SimUser }

export interface SimPbxOptions {
  readonly name: string
  readonly isMaster: boolean
  readonly password: string | Redacted.Redacted<string>
  /** Enabled APIs; default PbxApi and PbxTableUsers. */
  readonly apis?: ReadonlyArray<string>
  /** Service licences on the App object (`info.lics`); left out of the AppLogin when undefined, as on a real PBX. */
  readonly lics?: number | undefined
  /** `info.unlicensed` (default true, as in every real capture). */
  readonly unlicensed?: boolean
  readonly appObject: string
  /** Users registered at this PBX (their `loc` defaults to this PBX). Every PBX replicates the whole system's table. */
  readonly users?: ReadonlyArray<SimUser>
}

export interface PbxSimulatorOptions {
  /** ws:// URL of the connector's app service endpoint (the App object's URL). */
  readonly connectUrl: string
  readonly domain: string
  readonly pbxs: ReadonlyArray<SimPbxOptions>
  /** Port of the HTTP control API; 0 = ephemeral; omitted = no control server. */
  readonly controlPort?: number
  readonly reconnectDelayMs?: number
  /** Idle time after which each PBX sends KeepAlive, as the AppWebsocket client does (default 60 s; 0 = never). */
  readonly keepAliveMs?: number
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

export class PbxSimulator {
  static readonly make = (options: PbxSimulatorOptions): Effect.Effect<PbxSimulatorHandle, never, Scope.Scope> =>
    Effect.gen(function*() {
      const model = new SystemModel()
      const master = options.pbxs.find((pbx) => pbx.isMaster) ?? options.pbxs[0]
      const pbxs = new Map<string, SimulatedPbx>()
      for (const pbx of options.pbxs) {
        for (const user of pbx.users ?? []) model.users.set(user.guid, { user, home: pbx.name })
        const simulated = new SimulatedPbx(
          {
            name: pbx.name,
            isMaster: pbx.isMaster,
            password: redactedPassword(pbx.password),
            apis: pbx.apis ?? ["PbxApi", "PbxTableUsers"],
            lics: pbx.lics,
            ...(pbx.unlicensed !== undefined ? { unlicensed: pbx.unlicensed } : {}),
            appObject: pbx.appObject
          },
          {
            connectUrl: options.connectUrl,
            domain: options.domain,
            reconnectDelayMs: options.reconnectDelayMs ?? 200,
            keepAliveMs: options.keepAliveMs ?? 60_000
          },
          model
        )
        simulated.onPresenceChanged = (guid) => {
          for (const other of pbxs.values()) other.pushPresence(guid)
        }
        pbxs.set(pbx.name, simulated)
      }

      const find = (name: string) =>
        Effect.suspend(() => {
          const pbx = pbxs.get(name)
          return pbx === undefined
            ? Effect.fail(new SimulatorError({ message: `no simulated PBX is named ${name}` }))
            : Effect.succeed(pbx)
        })

      const upsertUser = (user: SimUser, home?: string) =>
        Effect.sync(() => {
          const existed = model.users.get(user.guid)
          model.users.set(user.guid, { user, home: home ?? existed?.home ?? master?.name ?? "" })
          for (const pbx of pbxs.values()) pbx.pushUserChange(existed ? "ReplicateUpdate" : "ReplicateAdd", user)
          model.changed()
        })
      const setAppLicences = (guid: string, licences: ReadonlyArray<string>) =>
        Effect.suspend(() => {
          const entry = model.users.get(guid)
          if (entry === undefined) return Effect.fail(new SimulatorError({ message: `no user has the guid ${guid}` }))
          model.users.set(guid, { ...entry, user: { ...entry.user, licences } })
          model.changed()
          return Effect.void
        })
      const removeUser = (guid: string) =>
        Effect.sync(() => {
          const removed = model.users.get(guid)
          if (removed === undefined) return
          model.users.delete(guid)
          model.presence.delete(guid)
          for (const pbx of pbxs.values()) pbx.pushUserChange("ReplicateDel", removed.user)
          model.changed()
        })

      // Calls: every PBX of the system tells its watchers (the presence monitor and RCC live on the user's PBX).
      let callIds = 0
      const callChanged = (call: SimCall, msg: string) => {
        for (const pbx of pbxs.values()) pbx.pushCall(call, msg)
        model.changed()
      }
      const findCall = (id: number) =>
        Effect.suspend(() => {
          const call = model.calls.get(id)
          return call === undefined ? Effect.fail(new SimulatorError({ message: `no call has the id ${id}` })) : Effect.succeed(call)
        })
      const placeCall = (guid: string, callOptions?: { readonly state?: SimCall["state"] }) =>
        Effect.gen(function*() {
          if (!model.users.has(guid)) return yield* new SimulatorError({ message: `no user has the guid ${guid}` })
          const call: SimCall = { id: ++callIds, guid, state: callOptions?.state ?? "connected", hold: false, since: yield* Clock.currentTimeMillis }
          model.calls.set(call.id, call)
          callChanged(call, call.state === "alerting" ? "x-alert" : "x-conn")
          return call.id
        })
      const updateCall = (id: number, change: { readonly state?: SimCall["state"]; readonly hold?: boolean }) =>
        Effect.map(findCall(id), (call) => {
          const next: SimCall = { ...call, ...(change.state !== undefined ? { state: change.state } : {}), ...(change.hold !== undefined ? { hold: change.hold } : {}) }
          model.calls.set(id, next)
          callChanged(next, change.hold === true ? "r-facility" : change.state === "connected" ? "x-conn" : "r-info")
        })
      const endCall = (id: number) =>
        Effect.map(findCall(id), (call) => {
          model.calls.delete(id)
          callChanged(call, "r-rel")
        })

      const waitFor = <A>(check: () => A | undefined, timeoutMs = 10_000) =>
        Effect.callback<A>((resume) => {
          const attempt = () => {
            const value = check()
            if (value === undefined) return false
            unsubscribe()
            resume(Effect.succeed(value))
            return true
          }
          const unsubscribe = model.onChange(() => void attempt())
          attempt()
          return Effect.sync(unsubscribe)
        }).pipe(
          Effect.timeoutOrElse({
            duration: timeoutMs,
            orElse: () =>
              Effect.fail(new SimulatorTimeout({ message: `the PBX simulator did not reach the condition within ${timeoutMs} ms` }))
          })
        )

      const peek = {
        status: () => [...pbxs.values()].map((pbx) => pbx.status()),
        presence: (guid: string) => model.presence.get(guid) ?? [],
        setPresenceLog: () => [...model.setPresenceLog],
        checkAppLicLog: () => [...model.checkAppLicLog],
        calls: () => [...model.calls.values()],
        watchLog: () => [...model.watchLog]
      }

      const handle: Omit<PbxSimulatorHandle, "controlUrl"> = {
        status: Effect.sync(peek.status),
        users: Effect.sync(() => [...model.users.values()].map((entry) => entry.user)),
        upsertUser,
        setAppLicences,
        removeUser,
        setLicences: (name, lics) => Effect.map(find(name), (pbx) => void (pbx.config.lics = lics)),
        setApis: (name, apis) => Effect.map(find(name), (pbx) => void (pbx.config.apis = apis)),
        setReplicateAllObjects: (name, on) => Effect.map(find(name), (pbx) => void (pbx.config.replicateAllObjects = on)),
        presence: (guid) => Effect.sync(() => peek.presence(guid)),
        setPresenceLog: Effect.sync(peek.setPresenceLog),
        setCheckAppLicBehaviour: (name, behaviour) =>
          Effect.map(find(name), (pbx) => {
            if (behaviour.delayMs !== undefined) pbx.admin.behaviour.delayMs = behaviour.delayMs
            if (behaviour.unanswered !== undefined) pbx.admin.behaviour.unanswered = new Set(behaviour.unanswered)
          }),
        drop: (name, dropOptions) => Effect.map(find(name), (pbx) => pbx.drop(dropOptions?.reconnect ?? true)),
        reconnect: (name) => Effect.map(find(name), (pbx) => pbx.reconnect()),
        setPresenceBehaviour: (name, behaviour) =>
          Effect.map(find(name), (pbx) => {
            if ("refuse" in behaviour) pbx.refuseSetPresence = behaviour.refuse
            if (behaviour.delayMs !== undefined) pbx.delaySetPresenceMs = behaviour.delayMs
          }),
        placeCall,
        updateCall,
        endCall,
        calls: Effect.sync(peek.calls),
        sendRaw: (name, text) =>
          Effect.flatMap(find(name), (pbx) =>
            pbx.sendRaw(text)
              ? Effect.void
              : Effect.fail(new SimulatorError({ message: `PBX ${name} is not connected` }))),
        waitFor,
        peek
      }

      const controlUrl = options.controlPort === undefined
        ? undefined
        : yield* startControlServer(options.controlPort, handle)

      yield* Effect.acquireRelease(
        Effect.sync(() => {
          for (const pbx of pbxs.values()) pbx.start()
        }),
        () =>
          Effect.sync(() => {
            for (const pbx of pbxs.values()) pbx.stop()
          })
      )
      return { ...handle, controlUrl }
    })
}

/**
 * A demo system: a master and one slave, `userCount` users with e-mail addresses and `apps` listing the connector's
 * app, split across both PBXs. User n is "User n" with `user{n}@{emailDomain}` (default contoso.com), as the Graph
 * simulator's `generateUsers` names Teams user n, so e-mail matching pairs them one to one.
 */
export const demoSystemOptions = (options: {
  readonly connectUrl: string
  readonly password: string | Redacted.Redacted<string>
  readonly userCount: number
  readonly domain?: string
  readonly appObject?: string
  readonly lics?: number
  readonly controlPort?: number
  readonly emailDomain?: string
  /** APIs enabled on both App objects (default PbxApi and PbxTableUsers). */
  readonly apis?: ReadonlyArray<string>
}): PbxSimulatorOptions => {
  const domain = options.domain ?? "example.com"
  const appObject = options.appObject ?? "teams-presence"
  const emailDomain = options.emailDomain ?? "contoso.com"
  const users = Array.from({ length: options.userCount }, (_, index): SimUser & { readonly home: string } => {
    const number = index + 1
    const n = String(number).padStart(4, "0")
    const home = index % 2 === 0 ? "pbx-master" : "pbx-slave"
    return {
      // Fixed width: the number fills the 28 places after the prefix, so every user's guid differs.
      guid: `demo${String(number).padStart(28, "0")}`,
      h323: `user${n}`,
      cn: `User ${number}`,
      dn: `User ${n}, Demo`,
      e164: `${1000 + number}`,
      emails: [`user${number}@${emailDomain}`],
      loc: home,
      node: "root",
      apps: [appObject, "users"],
      licences: [`App(${appObject})`],
      home
    }
  })
  // Objects of the same table that are not people, with e-mail addresses: a PBX sends them only when asked for
  // their type (or by the older-firmware fault), and the connector must never match them.
  const others: ReadonlyArray<SimUser> = [
    { guid: `queue${"0".repeat(26)}01`, h323: "sales-queue", cn: "Sales Queue", emails: [`sales@${emailDomain}`], pseudo: "waiting", loc: "pbx-master" },
    { guid: `trunk${"0".repeat(26)}01`, h323: "trunk", cn: "Trunk Line", pseudo: "trunk", loc: "pbx-master" }
  ]
  const pbx = (name: string, isMaster: boolean): SimPbxOptions => ({
    name,
    isMaster,
    password: options.password,
    lics: options.lics,
    ...(options.apis !== undefined ? { apis: options.apis } : {}),
    appObject,
    users: [...users.filter((user) => user.home === name).map(({ home: _, ...user }) => user), ...(isMaster ? others : [])]
  })
  return {
    connectUrl: options.connectUrl,
    domain,
    pbxs: [pbx("pbx-master", true), pbx("pbx-slave", false)],
    ...(options.controlPort !== undefined ? { controlPort: options.controlPort } : {})
  }
}
