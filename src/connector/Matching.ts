/**
 * Pairs Teams users with PBX users. Pure: the same inputs always give the same pairs. An ambiguity (one key naming two
 * users on either side) syncs neither user and is reported with its reason, because writing a presence to the wrong
 * person is worse than writing none.
 */

export interface TeamsUserRef {
  readonly id: string
  readonly displayName?: string | null | undefined
  readonly userPrincipalName?: string | null | undefined
  readonly mail?: string | null | undefined
  readonly otherMails?: ReadonlyArray<string> | null | undefined
}

export interface PbxUserRef {
  readonly guid: string
  readonly h323?: string | undefined
  readonly cn?: string | undefined
  readonly emails?: ReadonlyArray<string> | undefined
  readonly h323Email?: string | undefined
}

export type MatchStrategy =
  | { readonly _tag: "email" }
  | { readonly _tag: "displayName" }
  /** Explicit pairs: Teams user id or UPN → PBX h323 name or guid. */
  | { readonly _tag: "file"; readonly pairs: Readonly<Record<string, string>> }

export interface MatchedUser<T extends TeamsUserRef = TeamsUserRef, P extends PbxUserRef = PbxUserRef> {
  readonly teams: T
  readonly pbx: P
  /** The key both sides share (address, name or mapping entry), for the status page. */
  readonly key: string
}

export interface Ambiguity {
  readonly key: string
  readonly reason: string
  readonly teamsIds: ReadonlyArray<string>
  readonly pbxGuids: ReadonlyArray<string>
}

export interface MatchResult<T extends TeamsUserRef = TeamsUserRef, P extends PbxUserRef = PbxUserRef> {
  readonly matched: ReadonlyArray<MatchedUser<T, P>>
  readonly unmatchedTeams: ReadonlyArray<T>
  readonly unmatchedPbx: ReadonlyArray<P>
  readonly ambiguous: ReadonlyArray<Ambiguity>
}

const normalise = (value: string): string => value.trim().toLowerCase()

/** The distinct e-mail addresses among `values`, normalised. */
const emailKeys = (values: ReadonlyArray<string | null | undefined>): ReadonlyArray<string> => [
  ...new Set(values.filter((v): v is string => typeof v === "string" && v.includes("@")).map(normalise))
]

const keysFor = (strategy: MatchStrategy) => {
  // The file's pairs by normalised key (the first of keys that differ only in case), built once per matching rather
  // than searched per Teams user.
  const filePairs = new Map<string, string>()
  if (strategy._tag === "file") {
    for (const [key, target] of Object.entries(strategy.pairs)) {
      if (!filePairs.has(normalise(key))) filePairs.set(normalise(key), target)
    }
  }
  return {
    teams: (user: TeamsUserRef): ReadonlyArray<string> => {
      switch (strategy._tag) {
        case "email":
          return emailKeys([user.mail, user.userPrincipalName, ...(user.otherMails ?? [])])
        case "displayName":
          return user.displayName ? [normalise(user.displayName)] : []
        case "file": {
          const target = strategy.pairs[user.id] ??
            (user.userPrincipalName ? filePairs.get(normalise(user.userPrincipalName)) : undefined)
          return target === undefined ? [] : [normalise(target)]
        }
      }
    },
    pbx: (user: PbxUserRef): ReadonlyArray<string> => {
      switch (strategy._tag) {
        case "email":
          return emailKeys([...(user.emails ?? []), user.h323Email])
        case "displayName":
          return user.cn ? [normalise(user.cn)] : []
        case "file":
          return [user.guid, user.h323].filter((v): v is string => typeof v === "string" && v !== "").map(normalise)
      }
    }
  }
}

const index = <A>(items: ReadonlyArray<A>, keys: (a: A) => ReadonlyArray<string>): Map<string, Array<A>> => {
  const map = new Map<string, Array<A>>()
  for (const item of items) {
    for (const key of keys(item)) {
      const list = map.get(key)
      if (list === undefined) map.set(key, [item])
      else if (!list.includes(item)) list.push(item)
    }
  }
  return map
}

/**
 * Matches by the strategy's keys. A Teams user may match on any of its keys; it is matched when all its keys that hit
 * the PBX name exactly one PBX user, and that PBX user is claimed by no other Teams user.
 */
export const matchUsers = <T extends TeamsUserRef, P extends PbxUserRef>(
  teamsUsers: ReadonlyArray<T>,
  pbxUsers: ReadonlyArray<P>,
  strategy: MatchStrategy
): MatchResult<T, P> => {
  const keys = keysFor(strategy)
  const pbxByKey = index(pbxUsers, keys.pbx)
  const ambiguous: Array<Ambiguity> = []
  const excludedTeams = new Set<string>()
  const excludedPbx = new Set<string>()

  // Candidate PBX user per Teams user.
  const candidates = new Map<T, { pbx: P; key: string }>()
  for (const teams of teamsUsers) {
    const hits = new Map<string, { pbx: P; key: string }>()
    for (const key of keys.teams(teams)) {
      const found = pbxByKey.get(key) ?? []
      if (found.length > 1) {
        ambiguous.push({
          key,
          reason: `${found.length} PBX users share "${key}"`,
          teamsIds: [teams.id],
          pbxGuids: found.map((p) => p.guid)
        })
        excludedTeams.add(teams.id)
        for (const p of found) excludedPbx.add(p.guid)
      }
      for (const pbx of found) hits.set(pbx.guid, { pbx, key })
    }
    if (hits.size > 1 && !excludedTeams.has(teams.id)) {
      ambiguous.push({
        key: [...hits.values()].map((h) => h.key).join(", "),
        reason: `Teams user ${teams.userPrincipalName ?? teams.id} matches ${hits.size} PBX users`,
        teamsIds: [teams.id],
        pbxGuids: [...hits.keys()]
      })
      excludedTeams.add(teams.id)
      for (const guid of hits.keys()) excludedPbx.add(guid)
    }
    const only = hits.size === 1 ? [...hits.values()][0] : undefined
    if (only !== undefined) candidates.set(teams, only)
  }

  // A PBX user claimed by two Teams users syncs neither.
  const claims = new Map<string, Array<T>>()
  for (const [teams, { pbx }] of candidates) {
    const list = claims.get(pbx.guid)
    if (list === undefined) claims.set(pbx.guid, [teams])
    else list.push(teams)
  }
  for (const [guid, claimants] of claims) {
    if (claimants.length > 1) {
      ambiguous.push({
        key: candidates.get(claimants[0]!)!.key,
        reason: `${claimants.length} Teams users match one PBX user`,
        teamsIds: claimants.map((t) => t.id),
        pbxGuids: [guid]
      })
      excludedPbx.add(guid)
      for (const t of claimants) excludedTeams.add(t.id)
    }
  }

  const matched: Array<MatchedUser<T, P>> = []
  const matchedTeams = new Set<string>()
  const matchedPbx = new Set<string>()
  for (const [teams, { pbx, key }] of candidates) {
    if (excludedTeams.has(teams.id) || excludedPbx.has(pbx.guid)) continue
    matched.push({ teams, pbx, key })
    matchedTeams.add(teams.id)
    matchedPbx.add(pbx.guid)
  }
  matched.sort((a, b) => (a.pbx.guid < b.pbx.guid ? -1 : a.pbx.guid > b.pbx.guid ? 1 : 0))

  return {
    matched,
    unmatchedTeams: teamsUsers.filter((t) => !matchedTeams.has(t.id) && !excludedTeams.has(t.id)),
    unmatchedPbx: pbxUsers.filter((p) => !matchedPbx.has(p.guid) && !excludedPbx.has(p.guid)),
    ambiguous
  }
}
