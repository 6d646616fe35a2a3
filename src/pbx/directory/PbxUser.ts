/**
 * A person of the PBX user table as the directory keeps it, built from a replicated row (PbxMessages.ts `UserRow`).
 */
import type { UserRow } from "../socket/PbxMessages.ts"

export interface PbxUser {
  readonly guid: string
  /** The user name (SIP). */
  readonly h323: string
  readonly cn: string
  readonly dn: string
  readonly e164: string
  readonly emails: ReadonlyArray<string>
  readonly h323Email?: boolean
  /** The PBX the user is registered at. */
  readonly loc: string
  readonly node: string
  /** Apps the user has rights to. */
  readonly apps: ReadonlyArray<string>
  readonly hide: boolean
  /** The groups the user is a member of (`grps`), for pbxToTeams.group. */
  readonly groups?: ReadonlyArray<string> | undefined
}

/** The `apps` column is a comma separated string on a real PBX; a list is accepted too. */
const parseApps = (apps: UserRow["apps"]): ReadonlyArray<string> => {
  if (apps === undefined) return []
  const items = typeof apps === "string"
    ? apps.split(/[,\s]+/)
    : apps.map((item) =>
      typeof item === "string"
        ? item
        : item !== null && typeof item === "object" && "name" in item && typeof item.name === "string"
        ? item.name
        : ""
    )
  return items.map((item) => item.trim()).filter((item) => item.length > 0)
}

/**
 * Values most users share (their PBX, node, apps and groups), kept once: each row arrives in a message of its own, so
 * without this every user held copies of the same strings and lists (≈ 300 bytes each, bench/userCost.ts). Bounded,
 * so a table of all-different values cannot grow it without end; beyond the bound values are simply not shared.
 */
const shared = new Map<string, string | ReadonlyArray<string>>()
const sharedLimit = 4_096
const noItems: ReadonlyArray<string> = Object.freeze([])
const sharedString = (value: string): string => {
  const known = shared.get(`s:${value}`)
  if (typeof known === "string") return known
  if (shared.size < sharedLimit) shared.set(`s:${value}`, value)
  return value
}
const sharedList = (items: ReadonlyArray<string>): ReadonlyArray<string> => {
  if (items.length === 0) return noItems
  const key = `l:${items.join("\u0000")}`
  const known = shared.get(key)
  if (known !== undefined && typeof known !== "string") return known
  const list = Object.freeze(items.map(sharedString))
  if (shared.size < sharedLimit) shared.set(key, list)
  return list
}

export const userFromRow = (row: UserRow): PbxUser => ({
  guid: row.guid,
  h323: row.h323 ?? "",
  cn: row.cn ?? "",
  dn: row.dn ?? "",
  e164: row.e164 ?? "",
  emails: (row.emails ?? []).map((entry) => entry.email),
  ...(row["h323-email"] !== undefined ? { h323Email: row["h323-email"] } : {}),
  loc: sharedString(row.loc ?? ""),
  node: sharedString(row.node ?? ""),
  apps: sharedList(parseApps(row.apps)),
  hide: row.hide ?? false,
  ...(row.grps !== undefined ? { groups: sharedList(parseApps(row.grps)) } : {})
})
