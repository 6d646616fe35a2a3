/**
 * The status page's user table and the plan's figures (counts, licensing, the lists of users not synchronised). The
 * table follows two change streams — the Teams users whose row the presence pipeline replaced, the PBX users whose
 * write the PBX confirmed — and a build looks only at the users named since the last one (UserRows.ts); a new plan
 * rebuilds the table, keeping every row whose inputs are the same objects.
 */
import { Effect, PubSub, SubscriptionRef } from "effect"
import type { Plan } from "../connector/Plan.ts"
import { PlanState } from "../connector/PlanState.ts"
import { PresencePipeline } from "../connector/PresencePipeline.ts"
import { PbxSettings } from "../pbx/PbxSettings.ts"
import { PresenceWriter } from "../pbx/writer/PresenceWriter.ts"
import type { Counts, LicensingStatus, StatusSnapshot } from "./StatusBoard.ts"
import { makeUserRows } from "./UserRows.ts"

/** The licensing block: the mode from the settings until the first plan, then the plan's pass. */
export const licensingStatus = (mode: LicensingStatus["mode"], plan: Plan): LicensingStatus => ({
  mode,
  ...(plan.licensing !== undefined
    ? {
      name: plan.licensing.name,
      serviceLicences: plan.licensing.serviceLicences,
      unlicensedFlag: plan.licensing.unlicensedFlag,
      cap: plan.licensing.cap,
      problem: plan.licensing.problem
    }
    : {}),
  licensed: plan.synced.length,
  unlicensed: plan.unlicensed.length,
  unknown: plan.unknown.length
})

/** The plan's lists for the status page, computed again only when the plan is another one. */
export const planLists = (plan: Plan) => ({
  unlicensed: [...plan.unlicensed, ...plan.unknown].map((u) => ({ name: `${u.teams.displayName} (${u.pbx.h323})`, reason: u.reason })),
  unmatched: [
    ...plan.unmatchedTeams.map((t) => ({ side: "teams" as const, name: `${t.displayName} <${t.userPrincipalName}>` })),
    ...plan.unmatchedPbx.map((p) => ({ side: "pbx" as const, name: `${p.cn} (${p.h323})` }))
  ],
  ambiguous: plan.ambiguous.map((a) => ({ key: a.key, reason: a.reason }))
})


export const counts = (plan: Plan): Counts => ({
  teamsUsers: plan.teamsUserCount,
  technicalAccounts: plan.technicalAccounts.length,
  pbxUsers: plan.pbxUserCount,
  matched: plan.matchedCount,
  licensed: plan.synced.length,
  unlicensed: plan.unlicensed.length,
  unmatched: plan.unmatchedTeams.length + plan.unmatchedPbx.length,
  ambiguous: plan.ambiguous.length
})

export type TableFigures = Pick<StatusSnapshot, "counts" | "licensing" | "users" | "unlicensed" | "unmatched" | "ambiguous">

/** Everything queued in a subscription, without waiting. */
const takeQueued = <A>(subscription: PubSub.Subscription<ReadonlyArray<A>>, into: Set<A>) =>
  Effect.map(PubSub.takeUpTo(subscription, Number.MAX_SAFE_INTEGER), (batches) => {
    for (const batch of batches) for (const item of batch) into.add(item)
  })

/**
 * The table's builder, subscribed at once to the pipeline's row changes and the writer's confirmations: each build
 * takes what they queued since the last one and rebuilds those rows, for the plan as it is now.
 */
export const makeUserTable = Effect.fnUntraced(function*() {
  const planState = yield* PlanState
  const pipeline = yield* PresencePipeline
  const writer = yield* PresenceWriter
  const licensing = (yield* PbxSettings).licensing
  const rowChanges = yield* pipeline.rowChanges
  const confirmations = yield* writer.confirmations
  const userRows = makeUserRows()
  // The figures of the plan, and the whole result while neither the plan nor the rows changed (the same object).
  let ofPlan: { readonly plan: Plan; readonly value: Omit<TableFigures, "users"> } | undefined
  let last: TableFigures | undefined
  return Effect.fnUntraced(function*(): Effect.fn.Return<TableFigures> {
    const changes = { teamsKeys: new Set<string>(), guids: new Set<string>() }
    yield* takeQueued(rowChanges, changes.teamsKeys)
    yield* takeQueued(confirmations, changes.guids)
    const plan = yield* SubscriptionRef.get(planState.plan)
    const users = yield* userRows(plan, yield* pipeline.rows, yield* writer.current, changes)
    if (ofPlan?.plan !== plan) {
      ofPlan = { plan, value: { counts: counts(plan), licensing: licensingStatus(licensing, plan), ...planLists(plan) } }
      last = undefined
    }
    if (last?.users !== users) last = { ...ofPlan.value, users }
    return last
  })
})
