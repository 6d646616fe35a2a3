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
  licences: Schema.optionalKey(Schema.Array(Schema.String)),
  /** Groups the user is a member of (the `grps` column). */
  groups: Schema.optionalKey(Schema.Array(Schema.String)),
  /**
   * Whether App objects may see the user's "on the phone" activity (the Visibility page's "On the phone" checkmark,
   * default true): without it a watcher never sees `on-the-phone`.
   */
  onThePhoneVisible: Schema.optionalKey(Schema.Boolean)
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

/** A call of a user, placed through the simulator's control API. */
export interface SimCall {
  readonly id: number
  readonly guid: string
  /** alerting: ringing at the user; connected: talking. */
  readonly state: "alerting" | "connected"
  readonly hold: boolean
  /** Clock milliseconds when the call began. */
  readonly since: number
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
  // Worked out only when a consumer asks for the column (a getter, enumerable like the others): a hash per row of a
  // 100,000-user load would be the simulator's largest cost in a bench that shares the machine with the connector.
  get pwd() {
    return createHash("sha256").update(`pwd:${user.guid}`).digest("hex").slice(0, 48)
  },
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
  grps: (user.groups ?? []).map((name) => ({ name, mode: "active" })),
  "t-allows": [{ name: "@example.com", online: true, presence: true, otf: user.onThePhoneVisible ?? true, note: true, visible: true }]
})

export class SystemModel {
  readonly users = new Map<string, { user: SimUser; home: string }>()
  readonly presence = new Map<string, Array<PresenceEntry>>()
  readonly setPresenceLog: Array<SetPresenceRecord> = []
  /** Every request to watch a user's calls (SubscribePresence, RCC UserInitialize), with the PBX that received it. */
  readonly watchLog: Array<{ readonly pbx: string; readonly mt: string; readonly guid: string | undefined }> = []
  /** Calls in progress, by call id. */
  readonly calls = new Map<number, SimCall>()
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

  /** Rows built once per version of a user (an edit replaces the entry), so a reload does not build them again. */
  private readonly rows = new WeakMap<{ user: SimUser; home: string }, Record<string, unknown>>()

  rowOf(guid: string): Record<string, unknown> | undefined {
    const entry = this.users.get(guid)
    if (entry === undefined) return undefined
    const known = this.rows.get(entry)
    if (known !== undefined) return known
    const row = userRow(entry.user, entry.home)
    this.rows.set(entry, row)
    return row
  }

  /**
   * The presence list a watcher receives: the stored list, and while the user has calls the on-the-phone activity the
   * PBX generates — as the phone's (`tel:`) entry, first — for a watcher allowed to see it (wiki Visibility, "On the
   * phone"). Which entry carries the generated activity is not documented (docs/protocol-notes.md, UNCONFIRMED).
   */
  presenceFor(guid: string): ReadonlyArray<PresenceEntry> {
    const stored = this.presence.get(guid) ?? []
    const user = this.users.get(guid)?.user
    const onThePhone = [...this.calls.values()].some((call) => call.guid === guid)
    if (!onThePhone || user?.onThePhoneVisible === false) return stored
    const phone = stored.find((entry) => entry.contact === "tel:")
    return [
      { contact: "tel:", status: "open", activity: "on-the-phone", note: phone?.note ?? "" },
      ...stored.filter((entry) => entry.contact !== "tel:")
    ]
  }

  /** Replaces the entry of `contact` and moves it to the front. */
  setPresence(guid: string, contact: string, activity: string, note: string): ReadonlyArray<PresenceEntry> {
    const rest = (this.presence.get(guid) ?? []).filter((entry) => entry.contact !== contact)
    const list = [{ contact, status: "open" as const, activity, note }, ...rest]
    this.presence.set(guid, list)
    return list
  }
}
