/**
 * The planner decides who is synchronised. At start-up: Teams users, the master's user table, the plan, the initial
 * sync of every planned user's presence, then the subscriptions. After that it plans again whenever an input changes
 * (Triggers.ts), debounced, and hands each new plan over: users who leave it get their Teams presence cleared, users
 * who join it get their last known presence written, and the presence source and the subscriptions get the new set.
 */
import { Context, Effect, Layer, Option, Queue, Schedule, SubscriptionRef } from "effect"
import { clip } from "../domain/LogText.ts"
import { clearPresence } from "../domain/PbxPresence.ts"
import { teamsKey } from "../domain/TeamsId.ts"
import { GraphConfig } from "../graph/client/GraphSettings.ts"
import { PresenceSource } from "../graph/presence/PresenceSource.ts"
import { SubscriptionManager } from "../graph/subscriptions/SubscriptionManager.ts"
import { type TeamsUser, TeamsUsers } from "../graph/users/TeamsUsers.ts"
import { Licences } from "../pbx/directory/Licences.ts"
import { PbxDirectory } from "../pbx/directory/PbxDirectory.ts"
import { PresenceWriter } from "../pbx/writer/PresenceWriter.ts"
import type { PresenceWrite } from "../pbx/writer/WriterState.ts"
import { FlowConfig } from "./FlowConfig.ts"
import { emptyPlan, makePlan, matchedPbxUsers, matchForPlan, type Plan, subscribedIds } from "./Plan.ts"
import { PlanState } from "./PlanState.ts"
import { PresencePipeline, writeOf } from "./PresencePipeline.ts"

/** Why the planner plans again: Teams users to be read again, or another PBX input (directory, licences). */
export type Trigger = "users" | "directory"

/** What the planner works with; `teamsUsers` and `summary` are its own state, touched by its fiber alone. */
interface Planning {
  readonly settings: FlowConfig["Service"]
  /** The delegated technical accounts' user names: they sign in for subscriptions and are nobody to match. */
  readonly technicalAccounts: ReadonlyArray<string>
  readonly state: PlanState["Service"]
  readonly directory: PbxDirectory["Service"]
  readonly licences: Licences["Service"]
  readonly writer: PresenceWriter["Service"]
  readonly users: TeamsUsers["Service"]
  readonly source: PresenceSource["Service"]
  readonly pipeline: PresencePipeline["Service"]
  readonly manager: Option.Option<SubscriptionManager["Service"]>
  readonly triggers: Queue.Queue<Trigger>
  teamsUsers: Option.Option<ReadonlyArray<TeamsUser>>
  summary: string
}

export class Planner extends Context.Service<Planner, {
  readonly trigger: (trigger: Trigger) => Effect.Effect<void>
  /** Start-up, then planning again on triggers, until interrupted (the flow forks and supervises it). */
  readonly run: Effect.Effect<void>
}>()("teams-presence-connector/connector/Planner") {
  static readonly layer = Layer.effect(
    Planner,
    Effect.gen(function*() {
      const planning: Planning = {
        settings: yield* FlowConfig,
        technicalAccounts: (yield* GraphConfig).accounts.map((account) => account.username),
        state: yield* PlanState,
        directory: yield* PbxDirectory,
        licences: yield* Licences,
        writer: yield* PresenceWriter,
        users: yield* TeamsUsers,
        source: yield* PresenceSource,
        pipeline: yield* PresencePipeline,
        manager: yield* Effect.serviceOption(SubscriptionManager),
        triggers: yield* Queue.unbounded<Trigger>(),
        teamsUsers: Option.none(),
        summary: ""
      }
      return Planner.of({ trigger: (trigger) => Queue.offer(planning.triggers, trigger).pipe(Effect.asVoid), run: run(planning) })
    })
  )
}

/** Lists the Teams users, retried with backoff until it works (the schedule never ends, so this never fails). */
const loadTeamsUsers = Effect.fn("Planner.loadTeamsUsers")(function*(planning: Planning) {
  const users = yield* planning.users.listTeamsUsers(planning.settings.usersCredential).pipe(
    Effect.tapError((error) => Effect.logError(`listing Teams users failed: ${clip(error.message, 300)}`)),
    Effect.retry(Schedule.min([Schedule.exponential("2 seconds", 2), Schedule.spaced("2 minutes")])),
    Effect.orDie
  )
  planning.teamsUsers = Option.some(users)
  yield* Effect.logInfo(`Teams users: ${users.length} with a Teams licence`)
})

/**
 * The plan from the current inputs (none while the Teams users are not known yet): match, then one licence pass over
 * the matched PBX users; a user whose licence is unknown keeps what the current plan decided.
 */
const computePlan = Effect.fn("Planner.computePlan")(function*(planning: Planning) {
  if (Option.isNone(planning.teamsUsers)) return Option.none<Plan>()
  const pbxUsers = yield* planning.directory.snapshot
  const match = matchForPlan({
    teamsUsers: planning.teamsUsers.value,
    pbxUsers: pbxUsers.values(),
    strategy: planning.settings.strategy,
    technicalAccounts: planning.technicalAccounts
  })
  const pass = yield* planning.licences.assess(matchedPbxUsers(match))
  const problem = pass.summary.problem
  if (problem !== undefined) yield* Effect.logWarning(`licences (${pass.summary.mode}): ${problem.message}. ${problem.fix}`)
  const previous = yield* SubscriptionRef.get(planning.state.plan)
  const held = Option.isSome(planning.manager) ? yield* planning.manager.value.held : undefined
  return Option.some(makePlan({ match, verdicts: pass.verdicts, licensing: pass.summary, previous, held }))
})

/** The writes a new plan needs: a clear for each user who left it, the last known presence for each who joined. */
const planWrites = Effect.fnUntraced(function*(planning: Planning, previous: Plan, plan: Plan) {
  const writes: Array<PresenceWrite> = []
  const served = new Set(plan.synced.map((s) => s.pbx.guid))
  // A user who is no longer synchronised must not keep a Teams presence the connector set.
  for (const [guid, held] of yield* planning.writer.desired) {
    if (!served.has(guid) && held.command._tag === "Set") writes.push(writeOf(guid, clearPresence))
  }
  const rows = yield* planning.pipeline.rows
  for (const synced of plan.synced) {
    const key = teamsKey(synced.teams.id)
    if (previous.byTeamsId.get(key)?.pbx.guid === synced.pbx.guid) continue
    const row = rows.get(key)
    if (row !== undefined) writes.push(writeOf(synced.pbx.guid, row.command, row.receivedAt))
  }
  return writes
})

/** Hands a new plan (already in the plan state) to the writer, the presence source and the subscriptions. */
const handOver = Effect.fn("Planner.handOver")(function*(planning: Planning, previous: Plan, plan: Plan) {
  yield* planning.writer.writeAll(yield* planWrites(planning, previous, plan))
  const ids = subscribedIds(plan)
  yield* planning.source.setUsers(ids)
  if (Option.isSome(planning.manager)) yield* planning.manager.value.setDesiredUsers(ids)
  const summary = `plan: ${plan.teamsUserCount} Teams users, ${plan.pbxUserCount} PBX users, ${plan.matchedCount} matched, ` +
    `${plan.synced.length} licensed and synchronised, ${plan.unlicensed.length} unlicensed, ${plan.unknown.length} licence unknown, ` +
    `${plan.ambiguous.length} ambiguous (licensing ${plan.licensing?.mode ?? "?"})`
  if (summary !== planning.summary) yield* Effect.logInfo(summary)
  planning.summary = summary
})

const replan = Effect.fn("Planner.replan")(function*(planning: Planning) {
  const plan = yield* computePlan(planning)
  if (Option.isNone(plan)) return
  const previous = yield* SubscriptionRef.getAndSet(planning.state.plan, plan.value)
  yield* handOver(planning, previous, plan.value)
})

/** Teams users and the master's directory, the plan, the initial sync, then (the same plan) the subscriptions. */
const startUp = Effect.fn("Planner.startUp")(function*(planning: Planning) {
  yield* loadTeamsUsers(planning)
  yield* Effect.logInfo("waiting for the master PBX's user directory")
  yield* planning.directory.ready
  const plan = yield* computePlan(planning)
  if (Option.isNone(plan)) return
  yield* SubscriptionRef.set(planning.state.plan, plan.value)
  const ids = subscribedIds(plan.value)
  yield* Effect.logInfo(`initial sync: reading ${ids.length} presences`)
  yield* planning.source.initialSync(ids)
  yield* Effect.logInfo("initial sync done; presence subscriptions next")
  yield* handOver(planning, emptyPlan, plan.value)
})

const run = Effect.fnUntraced(function*(planning: Planning) {
  yield* startUp(planning)
  while (true) {
    const first = yield* Queue.take(planning.triggers)
    yield* Effect.sleep(planning.settings.replanDebounceMillis)
    const rest = yield* Queue.clear(planning.triggers)
    if (first === "users" || rest.includes("users")) yield* loadTeamsUsers(planning)
    yield* replan(planning)
  }
})
