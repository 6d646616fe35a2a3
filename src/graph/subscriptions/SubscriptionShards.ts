/**
 * Pure shard planning: at most `maxUsersPerShard` users per presence subscription and one subscription per delegated
 * account (protocols.md §1.5). Assignment is sticky, so adding or removing users changes only the shards they touch.
 * Users are compared by `teamsKey`.
 */
import { teamsKey } from "../../domain/TeamsId.ts"

export interface PlannedShard {
  /** The account name, or `needs-account-<n>` for users no account is left for. */
  readonly key: string
  readonly account: string | undefined
  readonly userIds: ReadonlyArray<string>
}

/** Whether two lists name the same Teams users (by `teamsKey`). */
export const sameMembers = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): boolean => {
  if (a.length !== b.length) return false
  const set = new Set(a.map(teamsKey))
  return b.every((id) => set.has(teamsKey(id)))
}

/**
 * Keeps every still-desired user in the shard it was in, fills the accounts' free capacity with new users in the
 * given order, and puts what does not fit into account-less shards.
 */
export const planShards = (
  current: ReadonlyArray<PlannedShard>,
  desired: ReadonlyArray<string>,
  accounts: ReadonlyArray<string>,
  maxUsersPerShard: number
): ReadonlyArray<PlannedShard> => {
  const wanted = new Set(desired.map(teamsKey))
  const assigned = new Set<string>()
  const members = new Map<string, Array<string>>()
  for (const account of accounts) {
    const previous = current.find((shard) => shard.account === account)
    const kept = (previous?.userIds ?? []).filter((id) => wanted.has(teamsKey(id)) && !assigned.has(teamsKey(id))).slice(0, maxUsersPerShard)
    kept.forEach((id) => assigned.add(teamsKey(id)))
    members.set(account, kept)
  }
  const fresh = desired.filter((id) => !assigned.has(teamsKey(id)))
  let cursor = 0
  for (const account of accounts) {
    const list = members.get(account)!
    while (list.length < maxUsersPerShard && cursor < fresh.length) list.push(fresh[cursor++]!)
  }
  const shards: Array<PlannedShard> = accounts.map((account) => ({ key: account, account, userIds: members.get(account)! }))
  for (let n = 0; cursor < fresh.length; n++) {
    shards.push({ key: `needs-account-${n}`, account: undefined, userIds: fresh.slice(cursor, cursor + maxUsersPerShard) })
    cursor += maxUsersPerShard
  }
  return shards
}
