/**
 * The Graph simulator's directory: users (with their Teams licence and, for technical accounts, a password) and their
 * presences. Every change is published, so extensions (subscriptions, delivery) can notify.
 */
import { Clock, Effect, Option, PubSub } from "effect"
import { randomUUID } from "node:crypto"

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
  setPresence(id: string, presence: SimPresenceInput): Effect.Effect<Option.Option<SimPresence>>
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
      yield* PubSub.publish(userChanges, { _tag: "Deleted", user })
      return true
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
      const presence: SimPresence = {
        ...current,
        availability: input.availability,
        activity: input.activity,
        statusMessage,
        outOfOfficeSettings: { message: null, isOutOfOffice: input.activity.toLowerCase() === "outofoffice" },
        sequenceNumber: sequenceStamp(sequence++)
      }
      presences.set(id, presence)
      yield* PubSub.publish(presenceChanges, presence)
      return Option.some(presence)
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
    presenceChanges,
    userChanges
  }
  return directory
})
