/**
 * The Graph simulator's directory: users (with their Teams licence and, for technical accounts, a password) and their
 * presences. A presence is what Graph shows: the user's Teams clients (set through the control API), combined with the
 * sessions applications set and a status picked by hand (SimPresenceSessions). Every change of what Graph shows is
 * published, so extensions (subscriptions, delivery) can notify.
 */
import { Clock, Effect, Option, PubSub } from "effect"
import { randomUUID } from "node:crypto"
import { aggregate, type AppSession, liveSessions, type PreferredPresence, type PresenceInputs } from "./SimPresenceSessions.ts"

export const teamsServicePlanId = "57ff2da0-773e-42df-b2af-ffb7a2317929"

export interface SimUser {
  readonly id: string
  readonly displayName: string
  readonly userPrincipalName: string
  readonly mail: string | null
  readonly otherMails: ReadonlyArray<string>
  readonly accountEnabled: boolean
  /** Holds an enabled TEAMS1 service plan. */
  readonly teams: boolean
  /** Technical accounts only: the password grant checks it. */
  readonly password?: string | undefined
  /** Password grant is refused with AADSTS50076. */
  readonly mfa?: boolean | undefined
}

export type SimUserInput = Partial<SimUser> & { readonly displayName: string }

export interface SimStatusMessage {
  readonly content: string
  readonly expiryDateTime?: string | undefined
}

/** A presence exactly as the simulator answers it on the wire. */
export interface SimPresence {
  readonly id: string
  readonly availability: string
  readonly activity: string
  readonly statusMessage: {
    readonly message: { readonly content: string; readonly contentType: string }
    readonly expiryDateTime: { readonly dateTime: string; readonly timeZone: string }
    readonly publishedDateTime: string
  } | null
  readonly outOfOfficeSettings: { readonly message: string | null; readonly isOutOfOffice: boolean }
  readonly sequenceNumber: string
}

export type UserChange =
  | { readonly _tag: "Updated"; readonly user: SimUser; readonly created: boolean }
  | { readonly _tag: "Deleted"; readonly user: SimUser }

export interface SimPresenceInput {
  readonly availability: string
  readonly activity: string
  readonly statusMessage?: SimStatusMessage | null
}

export interface SimUsers {
  listUsers(): ReadonlyArray<SimUser>
  getUser(id: string): SimUser | undefined
  findUserByUpn(upn: string): SimUser | undefined
  addUser(input: SimUserInput): Effect.Effect<SimUser>
  updateUser(id: string, patch: Partial<Omit<SimUser, "id">>): Effect.Effect<Option.Option<SimUser>>
  removeUser(id: string): Effect.Effect<boolean>

  getPresence(id: string): SimPresence | undefined
  /** The user's Teams clients: what the user does in Teams (the control API's presence). */
  setPresence(id: string, presence: SimPresenceInput): Effect.Effect<Option.Option<SimPresence>>
  /** An application's presence session (setPresence); false when the user does not exist. */
  setSession(id: string, sessionId: string, session: AppSession): Effect.Effect<boolean>
  /** Ends an application's session (clearPresence): "missing" when it has none. */
  clearSession(id: string, sessionId: string): Effect.Effect<"cleared" | "missing" | "noUser">
  /** A status picked by hand (setUserPreferredPresence, or the user in Teams); undefined clears it. */
  setPreferred(id: string, preferred: PreferredPresence | undefined): Effect.Effect<boolean>
  /** The inputs behind a user's presence: clients, live sessions, preferred status. */
  presenceInputs(id: string): PresenceInputs | undefined
  /** Drops expired sessions and preferred statuses, and publishes what that changes. */
  expireSessions: Effect.Effect<void>
  readonly presenceChanges: PubSub.PubSub<SimPresence>
  readonly userChanges: PubSub.PubSub<UserChange>
}

export const presenceOf = (id: string, sequence: number): SimPresence => ({
  id,
  availability: "Offline",
  activity: "Offline",
  statusMessage: null,
  outOfOfficeSettings: { message: null, isOutOfOffice: false },
  sequenceNumber: sequenceStamp(sequence)
})

/** Lexicographically sortable, like Graph's stamps ("A0129311063"). */
const sequenceStamp = (n: number): string => `A${String(n).padStart(12, "0")}`

export const makeSimUsers = Effect.fnUntraced(function*() {
  const users = new Map<string, SimUser>()
  const presences = new Map<string, SimPresence>()
  const inputs = new Map<string, PresenceInputs>()
  let sequence = 1
  const presenceChanges = yield* PubSub.unbounded<SimPresence>()
  const userChanges = yield* PubSub.unbounded<UserChange>()

  const findUserByUpn = (upn: string) => {
    const lower = upn.toLowerCase()
    for (const user of users.values()) if (user.userPrincipalName.toLowerCase() === lower) return user
    return undefined
  }

  const addUser = (input: SimUserInput) =>
    Effect.gen(function*() {
      const id = input.id ?? randomUUID()
      const upn = input.userPrincipalName ?? `${input.displayName.replace(/[^A-Za-z0-9]+/g, ".").toLowerCase()}@contoso.com`
      const user: SimUser = {
        id,
        displayName: input.displayName,
        userPrincipalName: upn,
        mail: input.mail === undefined ? upn : input.mail,
        otherMails: input.otherMails ?? [],
        accountEnabled: input.accountEnabled ?? true,
        teams: input.teams ?? true,
        password: input.password,
        mfa: input.mfa
      }
      const created = !users.has(id)
      users.set(id, user)
      if (!presences.has(id)) presences.set(id, presenceOf(id, sequence++))
      yield* PubSub.publish(userChanges, { _tag: "Updated", user, created })
      return user
    })

  const updateUser = (id: string, patch: Partial<Omit<SimUser, "id">>) =>
    Effect.gen(function*() {
      const current = users.get(id)
      if (current === undefined) return Option.none<SimUser>()
      const user: SimUser = { ...current, ...patch, id }
      users.set(id, user)
      yield* PubSub.publish(userChanges, { _tag: "Updated", user, created: false })
      return Option.some(user)
    })

  const removeUser = (id: string) =>
    Effect.gen(function*() {
      const user = users.get(id)
      if (user === undefined) return false
      users.delete(id)
      presences.delete(id)
      inputs.delete(id)
      yield* PubSub.publish(userChanges, { _tag: "Deleted", user })
      return true
    })

  const inputsOf = (id: string): PresenceInputs =>
    inputs.get(id) ?? { client: { availability: "Offline", activity: "Offline" }, sessions: new Map(), preferred: undefined }

  /** Publishes what Graph shows when it differs from the last presence (or always, for a client change). */
  const show = Effect.fnUntraced(function*(id: string, always: boolean, statusMessage?: SimPresence["statusMessage"]) {
    const current = presences.get(id)
    if (current === undefined) return Option.none<SimPresence>()
    const now = yield* Clock.currentTimeMillis
    const shown = aggregate(inputsOf(id), now)
    const message = statusMessage === undefined ? current.statusMessage : statusMessage
    if (!always && shown.availability === current.availability && shown.activity === current.activity) return Option.some(current)
    const presence: SimPresence = {
      ...current,
      availability: shown.availability,
      activity: shown.activity,
      statusMessage: message,
      outOfOfficeSettings: { message: null, isOutOfOffice: inputsOf(id).client.activity.toLowerCase() === "outofoffice" },
      sequenceNumber: sequenceStamp(sequence++)
    }
    presences.set(id, presence)
    yield* PubSub.publish(presenceChanges, presence)
    return Option.some(presence)
  })

  const setPresence = (id: string, input: SimPresenceInput) =>
    Effect.gen(function*() {
      const current = presences.get(id)
      if (current === undefined) return Option.none<SimPresence>()
      const now = yield* Clock.currentTimeMillis
      const statusMessage = input.statusMessage === undefined
        ? current.statusMessage
        : input.statusMessage === null
        ? null
        : {
          message: { content: input.statusMessage.content, contentType: "text" },
          expiryDateTime: { dateTime: input.statusMessage.expiryDateTime ?? "9999-12-31T23:59:59.9999999", timeZone: "UTC" },
          publishedDateTime: new Date(now).toISOString()
        }
      inputs.set(id, { ...inputsOf(id), client: { availability: input.availability, activity: input.activity } })
      return yield* show(id, true, statusMessage)
    })

  const setSession = (id: string, sessionId: string, session: AppSession) =>
    Effect.gen(function*() {
      if (!presences.has(id)) return false
      const before = inputsOf(id)
      inputs.set(id, { ...before, sessions: new Map(before.sessions).set(sessionId, session) })
      yield* show(id, false)
      return true
    })

  const clearSession = (id: string, sessionId: string) =>
    Effect.gen(function*() {
      if (!presences.has(id)) return "noUser" as const
      const before = inputsOf(id)
      const now = yield* Clock.currentTimeMillis
      const live = liveSessions(before.sessions, now)
      if (!live.has(sessionId)) return "missing" as const
      live.delete(sessionId)
      inputs.set(id, { ...before, sessions: live })
      yield* show(id, false)
      return "cleared" as const
    })

  const setPreferred = (id: string, preferred: PreferredPresence | undefined) =>
    Effect.gen(function*() {
      if (!presences.has(id)) return false
      inputs.set(id, { ...inputsOf(id), preferred })
      yield* show(id, false)
      return true
    })

  const expireSessions = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    for (const [id, current] of inputs) {
      if (current.sessions.size === 0 && current.preferred === undefined) continue
      const sessions = liveSessions(current.sessions, now)
      const preferred = current.preferred !== undefined && current.preferred.expiresAt > now ? current.preferred : undefined
      inputs.set(id, { ...current, sessions, preferred })
      // Also re-evaluated while nothing expires: an Available session fades with time.
      yield* show(id, false)
    }
  })

  const directory: SimUsers = {
    listUsers: () => Array.from(users.values()),
    getUser: (id) => users.get(id),
    findUserByUpn,
    addUser,
    updateUser,
    removeUser,
    getPresence: (id) => presences.get(id),
    setPresence,
    setSession,
    clearSession,
    setPreferred,
    presenceInputs: (id) => (presences.has(id) ? inputsOf(id) : undefined),
    expireSessions,
    presenceChanges,
    userChanges
  }
  return directory
})
