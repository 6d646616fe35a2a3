/**
 * `node --expose-gc bench/userCost.ts [users]`: what one served user costs in each structure the connector keeps per
 * user, measured alone — the structure built for `users` users from values parsed out of JSON (as they arrive off the
 * wire), the heap after full collections before and after, divided by the users. Prints one JSON line. The bench's
 * `BENCH_LIVE_HEAP` gives the whole process's figure; this says where it goes.
 */
import { Effect } from "effect"
import type { PbxPresenceCommand } from "../src/domain/PbxPresence.ts"
import type { GraphPresence } from "../src/domain/Presence.ts"
import { mapPresenceDetailed } from "../src/domain/PresenceMapping.ts"
import { makePlan, matchForPlan } from "../src/connector/Plan.ts"
import type { PresenceRow } from "../src/connector/PresencePipeline.ts"
import { PresenceState } from "../src/graph/presence/PresenceState.ts"
import { planShards } from "../src/graph/subscriptions/SubscriptionShards.ts"
import type { TeamsUser } from "../src/graph/users/TeamsUsers.ts"
import { type PbxUser, userFromRow } from "../src/pbx/directory/PbxDirectory.ts"
import type { LicensingSummary, Verdict } from "../src/pbx/directory/Licences.ts"
import type { WrittenPresence } from "../src/pbx/writer/WriterState.ts"
import { makeUserRows } from "../src/status/UserRows.ts"

const USERS = Number(process.argv[2] ?? 10_000)
const collect = (globalThis as { gc?: () => void }).gc
if (collect === undefined) {
  process.stderr.write("run with node --expose-gc bench/userCost.ts\n")
  process.exit(2)
}
const live = () => {
  collect()
  collect()
  return process.memoryUsage().heapUsed
}
/** Keeps what was built reachable until the end. */
const kept: Array<unknown> = []
const measure = <A>(build: () => A): { value: A; bytesPerUser: number } => {
  const before = live()
  const value = build()
  kept.push(value)
  return { value, bytesPerUser: Math.round((live() - before) / USERS) }
}
/** A fresh copy, as if just decoded from a message: no string shared with what built it. */
const wire = <A>(value: A): A => JSON.parse(JSON.stringify(value)) as A

const uuid = (n: number) => `${String(n).padStart(8, "0")}-1111-2222-3333-${String(n).padStart(12, "0")}`
const guid = (n: number) => `demo${String(n).padStart(28, "0")}`

const teams = measure((): ReadonlyArray<TeamsUser> =>
  wire(Array.from({ length: USERS }, (_, i) => ({
    id: uuid(i + 1),
    displayName: `User ${i + 1}`,
    userPrincipalName: `user${i + 1}@contoso.com`,
    mail: `user${i + 1}@contoso.com`,
    otherMails: []
  })))
)
const directory = measure((): ReadonlyMap<string, PbxUser> => {
  const rows = wire(Array.from({ length: USERS }, (_, i) => ({
    guid: guid(i + 1),
    h323: `user${i + 1}`,
    cn: `User ${i + 1}`,
    dn: `User ${i + 1}`,
    e164: String(1000 + i),
    emails: [{ email: `user${i + 1}@contoso.com` }],
    loc: i % 2 === 0 ? "pbx-master" : "pbx-slave",
    node: "root",
    apps: "teams-presence,users",
    hide: false
  })))
  return new Map(rows.map((row) => [row.guid, userFromRow(row)]))
})
const plan = measure(() => {
  const match = matchForPlan({ teamsUsers: teams.value, pbxUsers: [...directory.value.values()], strategy: { _tag: "email" } })
  const verdicts = new Map<string, Verdict>([...directory.value.keys()].map((g) => [g, { _tag: "Licensed" } as Verdict]))
  return makePlan({ match, verdicts, licensing: { mode: "appRight" } as LicensingSummary })
})
const presences = wire(Array.from({ length: USERS }, (_, i): GraphPresence => ({
  id: uuid(i + 1),
  availability: "Available",
  activity: "Available",
  sequenceNumber: `C${String(i).padStart(12, "0")}`
})))
const state = measure(() => {
  const s = new PresenceState()
  s.setUsers(teams.value.map((u) => u.id))
  s.apply(presences.map((presence) => ({ presence, receivedAt: 0 })), "initial")
  return s
})
const flow = measure(() => {
  const rows = new Map<string, PresenceRow>()
  const written = new Map<string, PbxPresenceCommand>()
  for (const synced of plan.value.synced) {
    const presence = presences[Number(synced.teams.id.slice(0, 8)) - 1]!
    const command = mapPresenceDetailed(presence).command
    rows.set(synced.teams.id.toLowerCase(), { presence, command, receivedAt: 0, origin: "initial" })
    written.set(synced.pbx.guid, command)
  }
  return { rows, written }
})
const writer = measure(() => {
  const confirmed = new Map<string, WrittenPresence>()
  for (const [pbxGuid, command] of flow.value.written) confirmed.set(pbxGuid, { command, pbx: "pbx-master", sentAt: 0 })
  return confirmed
})
const status = measure(() =>
  Effect.runSync(makeUserRows()(plan.value, flow.value.rows, writer.value))
)
const shards = measure(() =>
  planShards([], teams.value.map((u) => u.id), Array.from({ length: Math.ceil(USERS / 650) }, (_, i) => `presence-${i + 1}`), 650)
)

const parts = {
  teamsUsers: teams.bytesPerUser,
  directoryRows: directory.bytesPerUser,
  plan: plan.bytesPerUser,
  presenceState: state.bytesPerUser,
  flowRowsAndWritten: flow.bytesPerUser,
  writerConfirmed: writer.bytesPerUser,
  statusRows: status.bytesPerUser,
  subscriptionMembership: shards.bytesPerUser
}
process.stdout.write(JSON.stringify({
  users: USERS,
  synced: plan.value.synced.length,
  bytesPerUser: parts,
  totalBytesPerUser: Object.values(parts).reduce((a, b) => a + b, 0),
  measure: "heap used after two full collections, after minus before building each structure, divided by the users"
}) + "\n")
