/**
 * The Graph simulator's directory: users (with their Teams licence and, for technical accounts, a password) and their
 * presences. A presence is what Graph shows: the user's Teams clients (set through the control API), combined with the
 * sessions applications set and a status picked by hand (SimPresenceSessions). Every change of what Graph shows is
 * handed to the directory's listeners, so extensions (subscriptions, delivery) can notify.
 *
 * The listeners run synchronously, inside the change: with many simulated tenants nearly every change is a POST of its
 * own, and a PubSub with a fiber taking from it cost a fiber wake per change (docs/performance.md, "tenants-50: the
 * simulators' cost, second round").
 */
import { Clock, Effect, Option } from "effect"
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
  /**
   * Calls `listener` with every change of what Graph shows, synchronously as it is made (a listener must not throw and
   * should only hand the change on); returns what removes it.
   */
  onPresenceChange(listener: (presence: SimPresence) => void): () => void
  /** Calls `listener` with every user added, edited or removed, as `onPresenceChange` does. */
  onUserChange(listener: (change: UserChange) => void): () => void
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

/** The directory's state: users, the presences Graph shows and what they are made of, the next sequence stamp. */
interface Directory {
  readonly users: Map<string, SimUser>
  readonly presences: Map<string, SimPresence>
  readonly inputs: Map<string, PresenceInputs>
  sequence: number
  readonly presenceListeners: Set<(presence: SimPresence) => void>
  readonly userListeners: Set<(change: UserChange) => void>
}

const listen = <A>(listeners: Set<(a: A) => void>, listener: (a: A) => void) => {
  // A wrapper of its own, so that the same function added twice is called twice and removed once each.
  const entry = (a: A) => listener(a)
  listeners.add(entry)
  return () => void listeners.delete(entry)
}

const tell = <A>(listeners: ReadonlySet<(a: A) => void>, a: A) => {
  for (const listener of listeners) listener(a)
}

export const makeSimUsers = Effect.fnUntraced(function*() {
  const directory: Directory = {
    users: new Map(),
    presences: new Map(),
    inputs: new Map(),
    sequence: 1,
    presenceListeners: new Set(),
    userListeners: new Set()
  }
  const users: SimUsers = {
    listUsers: () => Array.from(directory.users.values()),
    getUser: (id) => directory.users.get(id),
    findUserByUpn: (upn) => findUserByUpn(directory, upn),
    addUser: (input) => addUser(directory, input),
    updateUser: (id, patch) => updateUser(directory, id, patch),
    removeUser: (id) => removeUser(directory, id),
    getPresence: (id) => directory.presences.get(id),
    setPresence: (id, input) => setPresence(directory, id, input),
    setSession: (id, sessionId, session) => setSession(directory, id, sessionId, session),
    clearSession: (id, sessionId) => clearSession(directory, id, sessionId),
    setPreferred: (id, preferred) => setPreferred(directory, id, preferred),
    presenceInputs: (id) => (directory.presences.has(id) ? inputsOf(directory, id) : undefined),
    expireSessions: expireSessions(directory),
    onPresenceChange: (listener) => listen(directory.presenceListeners, listener),
    onUserChange: (listener) => listen(directory.userListeners, listener)
  }
  return users
})

const findUserByUpn = ({ users }: Directory, upn: string) => {
  const lower = upn.toLowerCase()
  for (const user of users.values()) if (user.userPrincipalName.toLowerCase() === lower) return user
  return undefined
}

const addUser = Effect.fnUntraced(function*(directory: Directory, input: SimUserInput) {
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
  const created = !directory.users.has(id)
  directory.users.set(id, user)
  if (!directory.presences.has(id)) directory.presences.set(id, presenceOf(id, directory.sequence++))
  tell(directory.userListeners, { _tag: "Updated", user, created })
  return user
})

const updateUser = Effect.fnUntraced(function*(directory: Directory, id: string, patch: Partial<Omit<SimUser, "id">>) {
  const current = directory.users.get(id)
  if (current === undefined) return Option.none<SimUser>()
  const user: SimUser = { ...current, ...patch, id }
  directory.users.set(id, user)
  tell(directory.userListeners, { _tag: "Updated", user, created: false })
  return Option.some(user)
})

const removeUser = Effect.fnUntraced(function*(directory: Directory, id: string) {
  const user = directory.users.get(id)
  if (user === undefined) return false
  directory.users.delete(id)
  directory.presences.delete(id)
  directory.inputs.delete(id)
  tell(directory.userListeners, { _tag: "Deleted", user })
  return true
})

const inputsOf = ({ inputs }: Directory, id: string): PresenceInputs =>
  inputs.get(id) ?? { client: { availability: "Offline", activity: "Offline" }, sessions: new Map(), preferred: undefined }

/** Publishes what Graph shows when it differs from the last presence (or always, for a client change). */
const show = Effect.fnUntraced(function*(directory: Directory, id: string, always: boolean, statusMessage?: SimPresence["statusMessage"]) {
  const current = directory.presences.get(id)
  if (current === undefined) return Option.none<SimPresence>()
  const now = yield* Clock.currentTimeMillis
  const shown = aggregate(inputsOf(directory, id), now)
  const message = statusMessage === undefined ? current.statusMessage : statusMessage
  if (!always && shown.availability === current.availability && shown.activity === current.activity) return Option.some(current)
  const presence: SimPresence = {
    ...current,
    availability: shown.availability,
    activity: shown.activity,
    statusMessage: message,
    outOfOfficeSettings: { message: null, isOutOfOffice: inputsOf(directory, id).client.activity.toLowerCase() === "outofoffice" },
    sequenceNumber: sequenceStamp(directory.sequence++)
  }
  directory.presences.set(id, presence)
  tell(directory.presenceListeners, presence)
  return Option.some(presence)
})

const setPresence = Effect.fnUntraced(function*(directory: Directory, id: string, input: SimPresenceInput) {
  const current = directory.presences.get(id)
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
  directory.inputs.set(id, { ...inputsOf(directory, id), client: { availability: input.availability, activity: input.activity } })
  return yield* show(directory, id, true, statusMessage)
})

const setSession = Effect.fnUntraced(function*(directory: Directory, id: string, sessionId: string, session: AppSession) {
  if (!directory.presences.has(id)) return false
  const before = inputsOf(directory, id)
  directory.inputs.set(id, { ...before, sessions: new Map(before.sessions).set(sessionId, session) })
  yield* show(directory, id, false)
  return true
})

const clearSession = Effect.fnUntraced(function*(directory: Directory, id: string, sessionId: string) {
  if (!directory.presences.has(id)) return "noUser" as const
  const before = inputsOf(directory, id)
  const now = yield* Clock.currentTimeMillis
  const live = liveSessions(before.sessions, now)
  if (!live.has(sessionId)) return "missing" as const
  live.delete(sessionId)
  directory.inputs.set(id, { ...before, sessions: live })
  yield* show(directory, id, false)
  return "cleared" as const
})

const setPreferred = Effect.fnUntraced(function*(directory: Directory, id: string, preferred: PreferredPresence | undefined) {
  if (!directory.presences.has(id)) return false
  directory.inputs.set(id, { ...inputsOf(directory, id), preferred })
  yield* show(directory, id, false)
  return true
})

const expireSessions = Effect.fnUntraced(function*(directory: Directory) {
  const now = yield* Clock.currentTimeMillis
  for (const [id, current] of directory.inputs) {
    if (current.sessions.size === 0 && current.preferred === undefined) continue
    const sessions = liveSessions(current.sessions, now)
    const preferred = current.preferred !== undefined && current.preferred.expiresAt > now ? current.preferred : undefined
    directory.inputs.set(id, { ...current, sessions, preferred })
    // Also re-evaluated while nothing expires: an Available session fades with time.
    yield* show(directory, id, false)
  }
})
