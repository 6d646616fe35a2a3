/**
 * Which PBX users the connector may serve, in the mode `pbx.licensing` names (docs/pbx-setup.md, "Licences"):
 * `appRight` — the user's `apps` column grants the App object; `appLicence` — the master confirms an `App(<name>)`
 * licence per user (CheckAppLic, AppLicenceCheck.ts); `all` — everyone. The App object's `info.lics` (service licences)
 * and `info.unlicensed` never switch a user off (docs/protocol-notes.md): they are reported, and `lics` caps the users
 * only when `pbx.maxUsers` says so. A verdict may be `Unknown` (the master has not logged in, PbxAdminApi is not
 * enabled, a request timed out): the caller then keeps what it decided before, as unknown is not unlicensed.
 */
import { Context, Deferred, Effect, Layer, Option, SubscriptionRef } from "effect"
import { checkAppLicences, licensed, unknown, unlicensed, type Verdict } from "./AppLicenceCheck.ts"
import { PbxConnections } from "../socket/PbxConnections.ts"
import { checkmarkOf } from "../socket/PbxMessages.ts"
import { type LicensingMode, PbxSettings, type PbxSettingsOptions } from "../PbxSettings.ts"
import type { PbxUser } from "./PbxDirectory.ts"

export type { Verdict } from "./AppLicenceCheck.ts"

export interface LicenceProblem {
  readonly message: string
  readonly fix: string
}

/** How licensing stands, for the plan and the status page. */
export interface LicensingSummary {
  readonly mode: LicensingMode
  /** What is looked for: the app name in the users' `apps` (appRight), or the licence such as `App(x)` (appLicence). */
  readonly name?: string
  /** The master App object's service licences (`info.lics`), for information. */
  readonly serviceLicences?: number
  /** The master's `info.unlicensed`, for information. */
  readonly unlicensedFlag?: boolean
  /** The cap in force (`pbx.maxUsers`). */
  readonly cap?: number
  /** Why no licence can be known now, with what to do. */
  readonly problem?: LicenceProblem
}

export interface LicencePass {
  /** By PBX guid. */
  readonly verdicts: ReadonlyMap<string, Verdict>
  readonly summary: LicensingSummary
}

const byGuid = (a: PbxUser, b: PbxUser) => (a.guid < b.guid ? -1 : a.guid > b.guid ? 1 : 0)

/** appRight: served when the `apps` column names the app (case-insensitive). */
export const appRightVerdict = (user: PbxUser, appName: string): Verdict =>
  user.apps.some((app) => app.toLowerCase() === appName.toLowerCase())
    ? licensed
    : unlicensed(`the user's apps do not include ${appName}: tick ${appName} on the user's Apps tab`)

/** The cap: of the licensed users the first `cap` by guid stay licensed, so the same users keep it across restarts. */
export const applyCap = (
  users: ReadonlyArray<PbxUser>,
  verdicts: ReadonlyMap<string, Verdict>,
  cap: number | undefined
): ReadonlyMap<string, Verdict> => {
  if (cap === undefined) return verdicts
  const capped = new Map(verdicts)
  let kept = 0
  for (const user of [...users].sort(byGuid)) {
    if (capped.get(user.guid)?._tag !== "Licensed") continue
    if (kept < cap) kept++
    else capped.set(user.guid, unlicensed(`pbx.maxUsers allows ${cap} users and they are in use`))
  }
  return capped
}

const all = (users: ReadonlyArray<PbxUser>, verdict: Verdict): ReadonlyMap<string, Verdict> =>
  new Map(users.map((user) => [user.guid, verdict]))

/** The cap `pbx.maxUsers` sets now: a number, none, or not known yet (service licences before the master's login). */
interface MasterState {
  readonly lics?: number | undefined
  readonly unlicensed?: boolean | undefined
  readonly loggedIn: boolean
}

const capOf = (settings: PbxSettingsOptions, master: MasterState | undefined): number | "unknown" | undefined => {
  if (settings.maxUsers === undefined || typeof settings.maxUsers === "number") return settings.maxUsers
  if (master?.lics !== undefined) return master.lics
  return master?.loggedIn === true ? 0 : "unknown"
}

const notLoggedIn = (master: string): LicenceProblem => ({
  message: `the master PBX ${master} has not logged in yet, so the App object's name is not known`,
  fix: "Wait for the master PBX to connect, or set pbx.appName"
})

interface ModeVerdicts {
  readonly verdicts: ReadonlyMap<string, Verdict>
  readonly name?: string
  readonly problem?: LicenceProblem
}

/** The master's login facts the licences depend on, as another runner holding the master's socket published them. */
export interface RemoteMasterInfo {
  readonly appName?: string | undefined
  readonly lics?: number | undefined
  readonly unlicensed?: boolean | undefined
  readonly loggedIn: boolean
}

/**
 * Where the master's socket may be on another process (a cluster, docs/scaling.md): its published login facts, used
 * while the master is not connected here. Absent in one process.
 */
export class RemoteMaster extends Context.Service<RemoteMaster, {
  readonly info: Effect.Effect<Option.Option<RemoteMasterInfo>>
}>()("teams-presence-connector/pbx/directory/RemoteMaster") {}

export class Licences extends Context.Service<Licences, {
  readonly mode: LicensingMode
  /** One pass over `users`: a verdict for each (for appLicence one CheckAppLic each), and the summary. */
  assess(users: ReadonlyArray<PbxUser>): Effect.Effect<LicencePass>
}>()("teams-presence-connector/pbx/directory/Licences") {
  static readonly layer = Layer.effect(
    Licences,
    Effect.gen(function*() {
      const services: Services = {
        settings: yield* PbxSettings,
        connections: yield* PbxConnections,
        remote: Option.getOrUndefined(yield* Effect.serviceOption(RemoteMaster))
      }
      return Licences.of({ mode: services.settings.licensing, assess: (users) => assess(services, users) })
    })
  )
}

interface Services {
  readonly settings: PbxSettingsOptions
  readonly connections: PbxConnections["Service"]
  readonly remote: RemoteMaster["Service"] | undefined
}

/** The master's facts: its connection here, else what the runner holding its socket published (a cluster). */
const masterFacts = Effect.fnUntraced(function*({ settings, connections, remote }: Services) {
  const login = yield* connections.masterLogin
  const local = (yield* SubscriptionRef.get(connections.states)).get(settings.masterPbx)
  const here = Option.isSome(yield* connections.master)
  const published = !here && remote !== undefined ? Option.getOrUndefined(yield* remote.info) : undefined
  if (published !== undefined) {
    const state: MasterState = { lics: published.lics, unlicensed: published.unlicensed, loggedIn: published.loggedIn }
    return { appName: published.appName, state }
  }
  const appName = Option.getOrUndefined(Option.map(login, (value) => value.info?.appobj ?? value.sip))
  return { appName, state: local as MasterState | undefined }
})

const unknownFor = (users: ReadonlyArray<PbxUser>, problem: LicenceProblem, name?: string): ModeVerdicts => ({
  verdicts: all(users, unknown(problem.message)),
  problem,
  ...(name !== undefined ? { name } : {})
})

/** appLicence: CheckAppLic for every user on the master's connection, if PbxAdminApi is enabled there. */
const appLicences = Effect.fnUntraced(function*({ settings, connections }: Services, users: ReadonlyArray<PbxUser>, name: string) {
  const master = yield* connections.master
  if (Option.isNone(master)) {
    return unknownFor(users, {
      message: `the master PBX ${settings.masterPbx} is not connected, so ${name} licences cannot be checked`,
      fix: "Wait for the master PBX to reconnect; users served so far stay served meanwhile"
    }, name)
  }
  const info = yield* Deferred.await(master.value.pbxInfo).pipe(Effect.timeoutOption(settings.requestTimeoutMs))
  if (Option.isNone(info)) {
    return unknownFor(users, {
      message: `the master PBX ${settings.masterPbx} has not said which APIs its App object enables`,
      fix: "Check the App object on the master PBX"
    }, name)
  }
  if (!(info.value.apis ?? []).includes("PbxAdminApi")) {
    return unknownFor(users, {
      message: `the App object on ${settings.masterPbx} does not enable PbxAdminApi, so ${name} licences cannot be checked`,
      fix: `On PBX ${settings.masterPbx}, open the App object and set the ${checkmarkOf("PbxAdminApi")} checkmark`
    }, name)
  }
  const verdicts = yield* checkAppLicences(master.value, users, name, settings.licenceCheckConcurrency)
  return { verdicts, name }
})

/** The verdicts of the configured mode, before the cap. */
const verdictsOf = (services: Services, users: ReadonlyArray<PbxUser>, appName: string | undefined): Effect.Effect<ModeVerdicts> => {
  const { settings } = services
  switch (settings.licensing) {
    case "all":
      return Effect.succeed({ verdicts: all(users, licensed) })
    case "appRight":
      return Effect.succeed(
        appName === undefined
          ? unknownFor(users, notLoggedIn(settings.masterPbx))
          : { verdicts: new Map(users.map((user) => [user.guid, appRightVerdict(user, appName)])), name: appName }
      )
    case "appLicence": {
      const base = settings.licenceName ?? appName
      return base === undefined ? Effect.succeed(unknownFor(users, notLoggedIn(settings.masterPbx))) : appLicences(services, users, `App(${base})`)
    }
  }
}

const assess = Effect.fn("Licences.assess")(function*(services: Services, users: ReadonlyArray<PbxUser>) {
  const { settings } = services
  const facts = yield* masterFacts(services)
  const appName = settings.appName ?? facts.appName
  const master = facts.state
  const mode = yield* verdictsOf(services, users, appName)
  const cap = capOf(settings, master)
  const verdicts = cap === "unknown"
    ? new Map([...mode.verdicts].map(([guid, verdict]) =>
      [guid, verdict._tag === "Licensed" ? unknown("the App object's service licences (pbx.maxUsers) are not known yet") : verdict] as const
    ))
    : applyCap(users, mode.verdicts, cap)
  const summary: LicensingSummary = {
    mode: settings.licensing,
    ...(mode.name !== undefined ? { name: mode.name } : {}),
    ...(master?.lics !== undefined ? { serviceLicences: master.lics } : {}),
    ...(master?.unlicensed !== undefined ? { unlicensedFlag: master.unlicensed } : {}),
    ...(typeof cap === "number" ? { cap } : {}),
    ...(mode.problem !== undefined ? { problem: mode.problem } : {})
  }
  return { verdicts, summary } satisfies LicencePass
})
