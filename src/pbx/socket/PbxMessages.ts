/**
 * The AppWebsocket messages the connector exchanges with a PBX (protocols.md §2.2–2.4), as Schemas. Frames are JSON
 * text; an envelope (`mt`, `api`, `src`) is decoded first, then the message that `mt` names.
 */
import { Schema } from "effect"

/** A message the connector sends: an `mt`, an `api` for API messages, and the message's own fields. */
export type PbxMessage = { readonly mt: string; readonly api?: string; readonly [key: string]: unknown }

export const Envelope = Schema.Struct({
  mt: Schema.String,
  api: Schema.optionalKey(Schema.String),
  src: Schema.optionalKey(Schema.String)
})
export type Envelope = typeof Envelope.Type

/** `info` of an AppLogin sent by a PBX; more keys may appear and are ignored. */
export const AppLoginInfo = Schema.Struct({
  appobj: Schema.optionalKey(Schema.String),
  appdn: Schema.optionalKey(Schema.String),
  appurl: Schema.optionalKey(Schema.String),
  pbx: Schema.optionalKey(Schema.String),
  cn: Schema.optionalKey(Schema.String),
  unlicensed: Schema.optionalKey(Schema.Boolean),
  lics: Schema.optionalKey(Schema.Number),
  apps: Schema.optionalKey(Schema.Array(Schema.Unknown))
})
export type AppLoginInfo = typeof AppLoginInfo.Type

export const AppLogin = Schema.Struct({
  mt: Schema.Literal("AppLogin"),
  app: Schema.String,
  domain: Schema.String,
  sip: Schema.String,
  guid: Schema.String,
  dn: Schema.String,
  digest: Schema.String,
  info: Schema.optionalKey(AppLoginInfo),
  pbxObj: Schema.optionalKey(Schema.String)
})
export type AppLogin = typeof AppLogin.Type

export const PbxInfo = Schema.Struct({
  mt: Schema.Literal("PbxInfo"),
  domain: Schema.optionalKey(Schema.String),
  pbx: Schema.optionalKey(Schema.String),
  pbxDns: Schema.optionalKey(Schema.String),
  apis: Schema.optionalKey(Schema.Array(Schema.String)),
  version: Schema.optionalKey(Schema.String),
  build: Schema.optionalKey(Schema.String)
})
export type PbxInfo = typeof PbxInfo.Type

/** A `<mt>Result`: only the error fields are common to all of them. */
export const ResultError = Schema.Struct({
  error: Schema.optionalKey(Schema.Union([Schema.Number, Schema.String, Schema.Boolean])),
  errorText: Schema.optionalKey(Schema.String)
})
export type ResultError = typeof ResultError.Type

/** One row of PbxTableUsers as the PBX sends it (only the columns the connector asks for are read). */
export const UserRow = Schema.Struct({
  guid: Schema.String,
  h323: Schema.optionalKey(Schema.String),
  cn: Schema.optionalKey(Schema.String),
  dn: Schema.optionalKey(Schema.String),
  e164: Schema.optionalKey(Schema.String),
  emails: Schema.optionalKey(Schema.Array(Schema.Struct({ email: Schema.String }))),
  "h323-email": Schema.optionalKey(Schema.Boolean),
  loc: Schema.optionalKey(Schema.String),
  node: Schema.optionalKey(Schema.String),
  apps: Schema.optionalKey(Schema.Union([Schema.String, Schema.Array(Schema.Unknown)])),
  hide: Schema.optionalKey(Schema.Boolean),
  /** The user's groups (`[{name, mode, dyn}]`, SDK PbxTableUsers.htm "grps"); read leniently, only `name` is used. */
  grps: Schema.optionalKey(Schema.Array(Schema.Unknown)),
  /** The object's type when it is not a plain user ("waiting", "trunk", "executive", …); absent or "" for a user. */
  pseudo: Schema.optionalKey(Schema.Union([Schema.String, Schema.Struct({ type: Schema.optionalKey(Schema.String) })]))
})
export type UserRow = typeof UserRow.Type

/** `ReplicateNextResult`: a row in `columns`, or no `columns` when the initial load is complete. */
export const ReplicateNextResult = Schema.Struct({
  mt: Schema.Literal("ReplicateNextResult"),
  columns: Schema.optionalKey(UserRow)
})

export const ReplicateRow = Schema.Struct({
  mt: Schema.Literals(["ReplicateAdd", "ReplicateUpdate"]),
  columns: UserRow
})

/** `ReplicateDel` names the row by guid, in `columns` (as the other replicate messages) or at the top level. */
export const ReplicateDel = Schema.Struct({
  mt: Schema.Literal("ReplicateDel"),
  guid: Schema.optionalKey(Schema.String),
  columns: Schema.optionalKey(Schema.Struct({ guid: Schema.String }))
})

/** The columns the connector replicates (protocols.md §2.3), `pseudo` to tell users from other objects. */
export const userColumns = ["guid", "h323", "cn", "dn", "e164", "emails", "h323-email", "loc", "node", "apps", "hide", "pseudo", "grps"] as const

/**
 * The object types that are people: a plain user (no pseudo type) and an executive, as innovaphone's own replication
 * tutorial asks for them and as PbxAdminApi SearchUsers defines user objects (docs/protocol-notes.md).
 */
export const userObjectTypes = ["", "executive"] as const

/**
 * ReplicateStart of a read-only consumer: `add` and `del` false (the connector never adds or deletes rows at the
 * PBX; a publisher that cannot grant them would not start the replication), no column marked for update, and only
 * the user object types. The PBX still pushes its own additions, updates and deletions.
 */
export const replicateStart = {
  api: "PbxTableUsers",
  mt: "ReplicateStart",
  add: false,
  del: false,
  columns: Object.fromEntries(userColumns.map((column) => [column, {}])),
  pseudo: userObjectTypes
} as const

/**
 * The pseudo type of a row: "" for a plain user. The column is a string on the wire; an object with `type` or an
 * XML-like `<… type="…">` is read too, as the exact form is not documented (docs/protocol-notes.md).
 */
export const pseudoType = (pseudo: UserRow["pseudo"]): string => {
  if (pseudo === undefined) return ""
  if (typeof pseudo !== "string") return (pseudo.type ?? "").trim().toLowerCase()
  const attribute = /\btype\s*=\s*["']([^"']*)["']/i.exec(pseudo)
  return (attribute === null ? pseudo : attribute[1]!).trim().toLowerCase()
}

/** Whether a row is a person the connector may match and write: a user or an executive, never a queue, trunk, … */
export const isUserObject = (row: Pick<UserRow, "pseudo">): boolean =>
  (userObjectTypes as ReadonlyArray<string>).includes(pseudoType(row.pseudo))

/** The two PBX APIs the connector needs enabled on every App object. */
export const requiredApis = ["PbxApi", "PbxTableUsers"] as const

/**
 * The App object's checkmark that enables each API (the App object's flags `pbx`, `tableusers`, `admin` in innovaphone's
 * own manager plugins; docs/protocol-notes.md), so that a missing API can be fixed by its name on the page.
 */
export const checkmarkOf = (api: string): string =>
  api === "PbxAdminApi" ? "Admin (PbxAdminApi)" : api === "PbxTableUsers" ? "TableUsers (PbxTableUsers)" : api

/** `CheckAppLicResult`: `ok` is true when the user holds the licence. */
export const CheckAppLicResult = Schema.Struct({
  mt: Schema.Literal("CheckAppLicResult"),
  ok: Schema.optionalKey(Schema.Boolean)
})

/** Parses a frame's text as JSON; undefined when it is not JSON. */
export const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}
