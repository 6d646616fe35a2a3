/**
 * The PBX simulator's system state: the user table every PBX of the system replicates, each user's presence list
 * (one entry per contact, newest first — what phones and myApps show), and the record of SetPresence requests.
 */
import { Schema } from "effect"
import { createHash } from "node:crypto"

export const SimUser = Schema.Struct({
  guid: Schema.String,
  h323: Schema.String,
  cn: Schema.String,
  dn: Schema.optionalKey(Schema.String),
  e164: Schema.optionalKey(Schema.String),
  emails: Schema.optionalKey(Schema.Array(Schema.String)),
  /** The PBX the user is registered at; defaults to the PBX whose table lists the user. */
  loc: Schema.optionalKey(Schema.String),
  node: Schema.optionalKey(Schema.String),
  /** Apps the user has rights to (sent as the comma separated `apps` column). */
  apps: Schema.optionalKey(Schema.Array(Schema.String)),
  hide: Schema.optionalKey(Schema.Boolean),
  /**
   * The object's type when it is not a plain user: "executive" (a person too), or "waiting" (waiting queue), "trunk",
   * "gw", "vm", "broadcast", "bc_conf", "mobility", … (innovaphone SDK doc/pbx/cdr.htm). These live in the same table.
   */
  pseudo: Schema.optionalKey(Schema.String),
  /** App licences assigned to the user, as the PBX names them, e.g. `App(teams-presence)` (answers CheckAppLic). */
  licences: Schema.optionalKey(Schema.Array(Schema.String))
})
export type SimUser = typeof SimUser.Type

export interface PresenceEntry {
  readonly contact: string
  readonly status: "open" | "closed"
  readonly activity: string
  readonly note: string
}

/** A CheckAppLic the simulator received (SimAdminApi.ts). */
export interface CheckAppLicRecord {
  readonly pbx: string
  readonly src: string | undefined
  readonly h323: string | undefined
  readonly guid: string | undefined
  readonly lic: string
  /** Requests received and not yet answered when this one arrived, itself included. */
  readonly inFlight: number
}

export interface SetPresenceRecord {
  /** The PBX whose connection carried the request. */
  readonly pbx: string
  readonly guid: string | undefined
  readonly sip: string | undefined
  readonly contact: string
  readonly activity: string
  readonly note: string
  readonly accepted: boolean
}

/** The object type of a table row: "" for a plain user. */
export const objectType = (user: SimUser): string => user.pseudo ?? ""

/**
 * The PbxTableUsers row of an object with every column a real PBX has (the conformance captures and the SDK's users
 * table): the replication sends the ones a consumer asks for. `pwd` is the PBX's encrypted password, never shown.
 */
export const userRow = (user: SimUser, defaultLoc: string): Record<string, unknown> => ({
  guid: user.guid,
  h323: user.h323,
  pwd: createHash("sha256").update(`pwd:${user.guid}`).digest("hex").slice(0, 48),
  cn: user.cn,
  dn: user.dn ?? user.cn,
  "apps-my": user.pseudo === undefined || user.pseudo === "executive" ? "users,phone" : "",
  config: user.pseudo === undefined || user.pseudo === "executive" ? "Config User" : "",
  e164: user.e164 ?? "",
  emails: (user.emails ?? []).map((email) => ({ email })),
  "h323-email": false,
  loc: user.loc ?? defaultLoc,
  node: user.node ?? "root",
  apps: (user.apps ?? []).join(","),
  hide: user.hide ?? false,
  fax: false,
  ...(user.pseudo !== undefined && user.pseudo !== "" ? { pseudo: user.pseudo } : {}),
  grps: [],
  "t-allows": [{ name: "@example.com", online: true, presence: true, otf: true, note: true, visible: true }]
})

export class SystemModel {
  readonly users = new Map<string, { user: SimUser; home: string }>()
  readonly presence = new Map<string, Array<PresenceEntry>>()
  readonly setPresenceLog: Array<SetPresenceRecord> = []
  /** Every CheckAppLic received (PbxAdminApi), in order. */
  readonly checkAppLicLog: Array<CheckAppLicRecord> = []
  private readonly listeners = new Set<() => void>()

  /** Listeners run after every change; `waitFor` re-checks its condition there. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  changed(): void {
    for (const listener of [...this.listeners]) listener()
  }

  findUser(guid: string | undefined, sip: string | undefined): SimUser | undefined {
    if (guid !== undefined && guid !== "") return this.users.get(guid)?.user
    if (sip === undefined || sip === "") return undefined
    for (const { user } of this.users.values()) if (user.h323 === sip) return user
    return undefined
  }

  findUserByNumber(num: string | undefined): SimUser | undefined {
    if (num === undefined || num === "") return undefined
    for (const { user } of this.users.values()) if (user.e164 === num) return user
    return undefined
  }

  rowOf(guid: string) {
    const entry = this.users.get(guid)
    return entry === undefined ? undefined : userRow(entry.user, entry.home)
  }

  /** Replaces the entry of `contact` and moves it to the front. */
  setPresence(guid: string, contact: string, activity: string, note: string): ReadonlyArray<PresenceEntry> {
    const rest = (this.presence.get(guid) ?? []).filter((entry) => entry.contact !== contact)
    const list = [{ contact, status: "open" as const, activity, note }, ...rest]
    this.presence.set(guid, list)
    return list
  }
}
