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

/** What the matching excludes as it goes: the ambiguities found and the users on either side they hold back. */
interface Exclusions {
  readonly ambiguous: Array<Ambiguity>
  readonly teams: Set<string>
  readonly pbx: Set<string>
}

type Candidate<P> = { readonly pbx: P; readonly key: string }

const exclude = (exclusions: Exclusions, ambiguity: Ambiguity) => {
  exclusions.ambiguous.push(ambiguity)
  for (const id of ambiguity.teamsIds) exclusions.teams.add(id)
  for (const guid of ambiguity.pbxGuids) exclusions.pbx.add(guid)
}

/** The one PBX user a Teams user's keys name, if they name exactly one; a key or user naming several is excluded. */
const candidateOf = <P extends PbxUserRef>(
  teams: TeamsUserRef,
  teamsKeys: ReadonlyArray<string>,
  pbxByKey: Map<string, Array<P>>,
  exclusions: Exclusions
): Candidate<P> | undefined => {
  const hits = new Map<string, Candidate<P>>()
  for (const key of teamsKeys) {
    const found = pbxByKey.get(key) ?? []
    if (found.length > 1) {
      exclude(exclusions, { key, reason: `${found.length} PBX users share "${key}"`, teamsIds: [teams.id], pbxGuids: found.map((p) => p.guid) })
    }
    for (const pbx of found) hits.set(pbx.guid, { pbx, key })
  }
  if (hits.size > 1 && !exclusions.teams.has(teams.id)) {
    exclude(exclusions, {
      key: [...hits.values()].map((h) => h.key).join(", "),
      reason: `Teams user ${teams.userPrincipalName ?? teams.id} matches ${hits.size} PBX users`,
      teamsIds: [teams.id],
      pbxGuids: [...hits.keys()]
    })
  }
  return hits.size === 1 ? [...hits.values()][0] : undefined
}

/** A PBX user claimed by two Teams users syncs neither. */
const excludeSharedClaims = <T extends TeamsUserRef, P extends PbxUserRef>(candidates: Map<T, Candidate<P>>, exclusions: Exclusions) => {
  const claims = new Map<string, Array<T>>()
  for (const [teams, { pbx }] of candidates) {
    const list = claims.get(pbx.guid)
    if (list === undefined) claims.set(pbx.guid, [teams])
    else list.push(teams)
  }
  for (const [guid, claimants] of claims) {
    if (claimants.length > 1) {
      exclude(exclusions, {
        key: candidates.get(claimants[0]!)!.key,
        reason: `${claimants.length} Teams users match one PBX user`,
        teamsIds: claimants.map((t) => t.id),
        pbxGuids: [guid]
      })
    }
  }
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
  const exclusions: Exclusions = { ambiguous: [], teams: new Set(), pbx: new Set() }
  const candidates = new Map<T, Candidate<P>>()
  for (const teams of teamsUsers) {
    const only = candidateOf(teams, keys.teams(teams), pbxByKey, exclusions)
    if (only !== undefined) candidates.set(teams, only)
  }
  excludeSharedClaims(candidates, exclusions)

  const matched: Array<MatchedUser<T, P>> = []
  const matchedTeams = new Set<string>()
  const matchedPbx = new Set<string>()
  for (const [teams, { pbx, key }] of candidates) {
    if (exclusions.teams.has(teams.id) || exclusions.pbx.has(pbx.guid)) continue
    matched.push({ teams, pbx, key })
    matchedTeams.add(teams.id)
    matchedPbx.add(pbx.guid)
  }
  matched.sort((a, b) => (a.pbx.guid < b.pbx.guid ? -1 : a.pbx.guid > b.pbx.guid ? 1 : 0))

  return {
    matched,
    unmatchedTeams: teamsUsers.filter((t) => !matchedTeams.has(t.id) && !exclusions.teams.has(t.id)),
    unmatchedPbx: pbxUsers.filter((p) => !matchedPbx.has(p.guid) && !exclusions.pbx.has(p.guid)),
    ambiguous: exclusions.ambiguous
  }
}
