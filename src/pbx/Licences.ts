/**
 * Which users the connector may serve (protocols.md §2.5, the project's choice, kept in this one module): a user is
 * licensed when the `apps` column lists the connector's app name, at most `lics` users, in a stable order (by guid).
 * The subscription manager runs `check` before every presence subscription.
 */
import { Context, Effect, Layer, Option, SubscriptionRef } from "effect"
import { PbxConnections } from "./PbxConnections.ts"
import { PbxSettings } from "./PbxSettings.ts"
import { PbxDirectory, type PbxUser } from "./UserDirectory.ts"

export interface UnlicensedUser {
  readonly user: PbxUser
  readonly reason: string
}

export interface LicenceAssignment {
  readonly licensed: ReadonlyArray<PbxUser>
  readonly unlicensed: ReadonlyArray<UnlicensedUser>
}

export interface LicenceState extends LicenceAssignment {
  /** The app name looked for in users' `apps` column; undefined until the master has logged in (unless configured). */
  readonly appName: string | undefined
  /** Licences on the master's App object (0 when it is unlicensed or has not logged in). */
  readonly lics: number
  readonly licensedGuids: ReadonlySet<string>
}

const byGuid = (a: PbxUser, b: PbxUser) => (a.guid < b.guid ? -1 : a.guid > b.guid ? 1 : 0)

/** The pure rule: entitled users sorted by guid, the first `lics` licensed, the others reported with the reason. */
export const licensedUsers = (users: Iterable<PbxUser>, lics: number, appName: string): LicenceAssignment => {
  const wanted = appName.toLowerCase()
  const licensed: Array<PbxUser> = []
  const unlicensed: Array<UnlicensedUser> = []
  for (const user of [...users].sort(byGuid)) {
    if (!user.apps.some((app) => app.toLowerCase() === wanted)) {
      unlicensed.push({ user, reason: `the user's apps do not include ${appName}` })
    } else if (licensed.length < lics) {
      licensed.push(user)
    } else {
      unlicensed.push({ user, reason: `all ${lics} licences of App ${appName} are in use` })
    }
  }
  return { licensed, unlicensed }
}

export class Licences extends Context.Service<Licences, {
  /** The current assignment, from the directory and the master's AppLogin `info.lics`. */
  readonly check: Effect.Effect<LicenceState>
  readonly isLicensed: (guid: string) => Effect.Effect<boolean>
}>()("presence-connector/pbx/Licences") {
  static readonly layer = Layer.effect(
    Licences,
    Effect.gen(function*() {
      const settings = yield* PbxSettings
      const connections = yield* PbxConnections
      const directory = yield* PbxDirectory

      const check = Effect.gen(function*() {
        const login = yield* connections.masterLogin
        const appName = settings.appName ??
          Option.getOrUndefined(Option.map(login, (value) => value.info?.appobj ?? value.sip))
        const master = (yield* SubscriptionRef.get(connections.states)).get(settings.masterPbx)
        const lics = master === undefined || master.unlicensed === true ? 0 : master.lics ?? 0
        const users = yield* directory.snapshot
        if (appName === undefined) {
          const reason = `the master PBX ${settings.masterPbx} has not logged in yet`
          return {
            appName,
            lics,
            licensed: [],
            unlicensed: [...users.values()].sort(byGuid).map((user) => ({ user, reason })),
            licensedGuids: new Set<string>()
          } satisfies LicenceState
        }
        const assignment = licensedUsers(users.values(), lics, appName)
        return {
          appName,
          lics,
          ...assignment,
          licensedGuids: new Set(assignment.licensed.map((user) => user.guid))
        } satisfies LicenceState
      })

      return Licences.of({
        check,
        isLicensed: (guid) => Effect.map(check, (state) => state.licensedGuids.has(guid))
      })
    })
  )
}
