/**
 * The status page's user table and the plan's figures (counts, licensing, the lists of users not synchronised), kept
 * from three change streams: the plan, the rows the presence pipeline replaced and the writes the PBX confirmed. A
 * rebuild looks only at the users the events since the last one named (UserRows.ts); a new plan rebuilds the table,
 * keeping every row whose inputs are the same objects.
 */
import { Effect, Stream, SubscriptionRef } from "effect"
import type { Plan } from "../connector/Plan.ts"
import { PlanState } from "../connector/PlanState.ts"
import { PresencePipeline } from "../connector/PresencePipeline.ts"
import { PbxSettings } from "../pbx/PbxSettings.ts"
import { PresenceWriter } from "../pbx/writer/PresenceWriter.ts"
import type { Counts, LicensingStatus, StatusSnapshot } from "./StatusBoard.ts"
import { makeUserRows } from "./UserRows.ts"

export type TableEvent =
  | { readonly _tag: "Plan" }
  | { readonly _tag: "Rows"; readonly teamsKeys: ReadonlyArray<string> }
  | { readonly _tag: "Confirmed"; readonly guids: ReadonlyArray<string> }

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
  pbxUsers: plan.pbxUserCount,
  matched: plan.matchedCount,
  licensed: plan.synced.length,
  unlicensed: plan.unlicensed.length,
  unmatched: plan.unmatchedTeams.length + plan.unmatchedPbx.length,
  ambiguous: plan.ambiguous.length
})

/** What changed, as the three streams tell it. */
export const tableEvents = (
  planState: PlanState["Service"],
  pipeline: PresencePipeline["Service"],
  writer: PresenceWriter["Service"]
): Stream.Stream<TableEvent> =>
  Stream.mergeAll([
    Stream.map(SubscriptionRef.changes(planState.plan), (): TableEvent => ({ _tag: "Plan" })),
    Stream.map(pipeline.rowChanges, (teamsKeys): TableEvent => ({ _tag: "Rows", teamsKeys })),
    Stream.map(writer.confirmed, (guids): TableEvent => ({ _tag: "Confirmed", guids }))
  ], { concurrency: "unbounded" })

export type TableFigures = Pick<StatusSnapshot, "counts" | "licensing" | "users" | "unlicensed" | "unmatched" | "ambiguous">

/** The table's builder: given the events since the last build, the figures for the plan as it is now. */
export const makeUserTable = Effect.fnUntraced(function*() {
  const planState = yield* PlanState
  const pipeline = yield* PresencePipeline
  const writer = yield* PresenceWriter
  const licensing = (yield* PbxSettings).licensing
  const userRows = makeUserRows()
  let lists: { readonly plan: Plan; readonly value: ReturnType<typeof planLists> } | undefined
  return Effect.fnUntraced(function*(events: ReadonlyArray<TableEvent>): Effect.fn.Return<TableFigures> {
    const teamsKeys = new Set<string>()
    const guids = new Set<string>()
    for (const event of events) {
      if (event._tag === "Rows") for (const key of event.teamsKeys) teamsKeys.add(key)
      else if (event._tag === "Confirmed") for (const guid of event.guids) guids.add(guid)
    }
    const plan = yield* SubscriptionRef.get(planState.plan)
    const users = yield* userRows(plan, yield* pipeline.rows, yield* writer.current, { teamsKeys, guids })
    if (lists?.plan !== plan) lists = { plan, value: planLists(plan) }
    return { counts: counts(plan), licensing: licensingStatus(licensing, plan), users, ...lists.value }
  })
})
