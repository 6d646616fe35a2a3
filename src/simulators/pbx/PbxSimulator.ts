/**
 * The innovaphone PBX simulator: one or more PBXs (master + slaves) of one system, each connecting to the connector's
 * app service with its own App object. Tests and the demo drive it through the handle or its HTTP control API
 * (docs/simulator-pbx.md).
 */
import { Clock, Effect, type Redacted, type Scope } from "effect"
import { startControlServer } from "./ControlApi.ts"
import { redactedPassword } from "./SimAppLogin.ts"
import { SimulatedPbx } from "./SimulatedPbx.ts"
import { type PbxSimulatorHandle, type SimPbxStatus, SimulatorError, SimulatorTimeout } from "./SimulatorHandle.ts"
import { type CheckAppLicRecord, type PresenceEntry, type SetPresenceRecord, type SimCall, type SimUser, SystemModel } from "./SimulatorModel.ts"

export type { CheckAppLicRecord, PbxSimulatorHandle, PresenceEntry, SetPresenceRecord, SimCall, SimPbxStatus, SimUser }
export { SimulatorError, SimulatorTimeout }

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
  /** This PBX's App object URL, when it differs from the system's `connectUrl` (e.g. a slave reaching another runner). */
  readonly connectUrl?: string
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

/** The system's PBXs, each with the users registered at it; a presence change reaches every PBX's subscribers. */
const buildSystem = (options: PbxSimulatorOptions, model: SystemModel): Map<string, SimulatedPbx> => {
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
        connectUrl: pbx.connectUrl ?? options.connectUrl,
        domain: options.domain,
        reconnectDelayMs: options.reconnectDelayMs ?? 200,
        keepAliveMs: options.keepAliveMs ?? 60_000
      },
      model
    )
    simulated.pbxApi.onPresenceChanged = (guid) => {
      for (const other of pbxs.values()) other.pbxApi.pushPresence(guid)
    }
    pbxs.set(pbx.name, simulated)
  }
  return pbxs
}

/** Edits of the system's user table, pushed to every PBX's replication. */
const userEdits = (model: SystemModel, pbxs: ReadonlyMap<string, SimulatedPbx>, masterName: string) => ({
  upsertUser: (user: SimUser, home?: string) =>
    Effect.sync(() => {
      const existed = model.users.get(user.guid)
      model.users.set(user.guid, { user, home: home ?? existed?.home ?? masterName })
      for (const pbx of pbxs.values()) pbx.pushUserChange(existed ? "ReplicateUpdate" : "ReplicateAdd", user)
      model.changed()
    }),
  setAppLicences: (guid: string, licences: ReadonlyArray<string>) =>
    Effect.suspend(() => {
      const entry = model.users.get(guid)
      if (entry === undefined) return Effect.fail(new SimulatorError({ message: `no user has the guid ${guid}` }))
      model.users.set(guid, { ...entry, user: { ...entry.user, licences } })
      model.changed()
      return Effect.void
    }),
  removeUser: (guid: string) =>
    Effect.sync(() => {
      const removed = model.users.get(guid)
      if (removed === undefined) return
      model.users.delete(guid)
      model.presence.delete(guid)
      for (const pbx of pbxs.values()) pbx.pushUserChange("ReplicateDel", removed.user)
      model.changed()
    })
})

/** Completes when `check` returns a value, re-checked after every change of the system (no polling). */
const waitForChange = (model: SystemModel) => <A>(check: () => A | undefined, timeoutMs = 10_000) =>
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
      orElse: () => Effect.fail(new SimulatorTimeout({ message: `the PBX simulator did not reach the condition within ${timeoutMs} ms` }))
    })
  )

/** The handle's per-PBX settings and faults. */
const pbxControls = (pbxs: ReadonlyMap<string, SimulatedPbx>) => {
  const find = (name: string) =>
    Effect.suspend(() => {
      const pbx = pbxs.get(name)
      return pbx === undefined ? Effect.fail(new SimulatorError({ message: `no simulated PBX is named ${name}` })) : Effect.succeed(pbx)
    })
  const on = (name: string, f: (pbx: SimulatedPbx) => void) => Effect.map(find(name), f)
  return {
    setLicences: (name: string, lics: number) => on(name, (pbx) => void (pbx.config.lics = lics)),
    setApis: (name: string, apis: ReadonlyArray<string>) => on(name, (pbx) => void (pbx.config.apis = apis)),
    setReplicateAllObjects: (name: string, all: boolean) => on(name, (pbx) => void (pbx.config.replicateAllObjects = all)),
    stallReplication: (name: string, count = 1) => on(name, (pbx) => void (pbx.config.stalledReplicateNexts = count)),
    setCheckAppLicBehaviour: (name: string, behaviour: { readonly delayMs?: number; readonly unanswered?: ReadonlyArray<string> }) =>
      on(name, (pbx) => {
        if (behaviour.delayMs !== undefined) pbx.admin.behaviour.delayMs = behaviour.delayMs
        if (behaviour.unanswered !== undefined) pbx.admin.behaviour.unanswered = new Set(behaviour.unanswered)
      }),
    drop: (name: string, dropOptions?: { readonly reconnect?: boolean }) => on(name, (pbx) => pbx.drop(dropOptions?.reconnect ?? true)),
    reconnect: (name: string) => on(name, (pbx) => pbx.reconnect()),
    setPresenceBehaviour: (name: string, behaviour: { readonly refuse?: string | undefined; readonly delayMs?: number }) =>
      on(name, (pbx) => {
        if ("refuse" in behaviour) pbx.pbxApi.behaviour.refuse = behaviour.refuse
        if (behaviour.delayMs !== undefined) pbx.pbxApi.behaviour.delayMs = behaviour.delayMs
      }),
    sendRaw: (name: string, text: string) =>
      Effect.flatMap(find(name), (pbx) =>
        pbx.sendRaw(text) ? Effect.void : Effect.fail(new SimulatorError({ message: `PBX ${name} is not connected` })))
  }
}

/** Calls: every PBX of the system tells its watchers (the presence monitor and RCC live on the user's PBX). */
const callControls = (model: SystemModel, pbxs: ReadonlyMap<string, SimulatedPbx>) => {
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
  return {
    placeCall: Effect.fnUntraced(function*(guid: string, callOptions?: { readonly state?: SimCall["state"] }) {
      if (!model.users.has(guid)) return yield* new SimulatorError({ message: `no user has the guid ${guid}` })
      const call: SimCall = { id: ++callIds, guid, state: callOptions?.state ?? "connected", hold: false, since: yield* Clock.currentTimeMillis }
      model.calls.set(call.id, call)
      callChanged(call, call.state === "alerting" ? "x-alert" : "x-conn")
      return call.id
    }),
    updateCall: (id: number, change: { readonly state?: SimCall["state"]; readonly hold?: boolean }) =>
      Effect.map(findCall(id), (call) => {
        const next: SimCall = {
          ...call,
          ...(change.state !== undefined ? { state: change.state } : {}),
          ...(change.hold !== undefined ? { hold: change.hold } : {})
        }
        model.calls.set(id, next)
        callChanged(next, change.hold === true ? "r-facility" : change.state === "connected" ? "x-conn" : "r-info")
      }),
    endCall: (id: number) =>
      Effect.map(findCall(id), (call) => {
        model.calls.delete(id)
        callChanged(call, "r-rel")
      }),
    calls: Effect.sync(() => [...model.calls.values()])
  }
}

export class PbxSimulator {
  static readonly make = Effect.fnUntraced(function*(options: PbxSimulatorOptions): Effect.fn.Return<PbxSimulatorHandle, never, Scope.Scope> {
    const model = new SystemModel()
    const pbxs = buildSystem(options, model)
    const master = options.pbxs.find((pbx) => pbx.isMaster) ?? options.pbxs[0]
    const peek = {
      status: () => [...pbxs.values()].map((pbx) => pbx.status()),
      presence: (guid: string) => model.presence.get(guid) ?? [],
      setPresenceLog: () => [...model.setPresenceLog],
      checkAppLicLog: () => [...model.checkAppLicLog],
      calls: () => [...model.calls.values()],
      watchLog: () => [...model.watchLog]
    }
    const handle: Omit<PbxSimulatorHandle, "controlUrl"> = {
      ...userEdits(model, pbxs, master?.name ?? ""),
      ...pbxControls(pbxs),
      ...callControls(model, pbxs),
      status: Effect.sync(peek.status),
      users: Effect.sync(() => [...model.users.values()].map((entry) => entry.user)),
      presence: (guid) => Effect.sync(() => peek.presence(guid)),
      setPresenceLog: Effect.sync(peek.setPresenceLog),
      waitFor: waitForChange(model),
      peek
    }
    const controlUrl = options.controlPort === undefined ? undefined : yield* startControlServer(options.controlPort, handle)
    yield* Effect.acquireRelease(
      Effect.sync(() => pbxs.forEach((pbx) => pbx.start())),
      () => Effect.sync(() => pbxs.forEach((pbx) => pbx.stop()))
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
