/**
 * The connector's flow, as fibers owned by one layer: Teams users + PBX directory + licences → the plan → presence
 * subscriptions and the presence source; presence changes → mapping → per-user dedupe → the PBX writer. Each fiber is
 * supervised: a failure is logged and the fiber restarts with backoff, without stopping the others.
 */
import { Context, Effect, Exit, Fiber, Layer, Metric, Option, Queue, Ref, Schedule, Stream, SubscriptionRef, type Tracer } from "effect"
import { clip } from "../domain/LogText.ts"
import { unknownPresences } from "../domain/Metrics.ts"
import { clearPresence, commandEquals, commandLabel, type PbxPresenceCommand } from "../domain/PbxPresence.ts"
import type { GraphPresence } from "../domain/Presence.ts"
import { mapPresenceDetailed } from "../domain/PresenceMapping.ts"
import { GraphConfig } from "../graph/client/GraphSettings.ts"
import { childSpan, endSpan } from "../observability/ChangeTrace.ts"
import { NotificationsInbox } from "../graph/notifications/NotificationsInbox.ts"
import { type PresenceChange, PresenceSource } from "../graph/presence/PresenceSource.ts"
import { type LicenceAnswer, LicenceCheck } from "../graph/subscriptions/SubscriptionLicenceCheck.ts"
import { SubscriptionManager } from "../graph/subscriptions/SubscriptionManager.ts"
import { type TeamsUser, TeamsUsers } from "../graph/users/TeamsUsers.ts"
import { Licences, type Verdict } from "../pbx/directory/Licences.ts"
import { PbxConnections } from "../pbx/socket/PbxConnections.ts"
import { type PresenceWrite, PresenceWriter } from "../pbx/PresenceWriter.ts"
import { PbxDirectory } from "../pbx/directory/UserDirectory.ts"
import { CallGuard } from "./calls/CallGuard.ts"
import { emptyPlan, makePlan, matchedPbxUsers, matchForPlan, type Plan, subscribedIds } from "./Plan.ts"
import type { FlowSettings } from "../config/Settings.ts"

export class FlowConfig extends Context.Service<FlowConfig, FlowSettings>()("teams-presence-connector/connector/FlowConfig") {}

/** What the flow knows per Teams user, for the status page. */
export interface PresenceRow {
  readonly presence: GraphPresence
  readonly command: PbxPresenceCommand
  readonly receivedAt: number
  readonly origin: PresenceChange["origin"]
}

/** Shared state of the flow: the current plan (also read by the licence check) and the latest presence per user. */
export class FlowState extends Context.Service<FlowState, {
  readonly plan: SubscriptionRef.SubscriptionRef<Plan>
  readonly teamsUsers: Ref.Ref<Option.Option<ReadonlyArray<TeamsUser>>>
  readonly rows: Map<string, PresenceRow>
  /** Teams keys whose row was replaced since the status projector last looked (it empties the set). */
  readonly rowsChanged: Set<string>
  /** Last command handed to the writer per PBX guid: only changes reach the PBX. */
  readonly written: Map<string, PbxPresenceCommand>
  /** A licence check before a subscription found a served user unlicensed: the planner re-plans. */
  readonly licenceChanges: Queue.Queue<void>
}>()("teams-presence-connector/connector/FlowState") {
  static readonly layer = Layer.effect(
    FlowState,
    Effect.gen(function*() {
      return FlowState.of({
        plan: yield* SubscriptionRef.make(emptyPlan),
        teamsUsers: yield* Ref.make(Option.none<ReadonlyArray<TeamsUser>>()),
        rows: new Map(),
        rowsChanged: new Set(),
        written: new Map(),
        licenceChanges: yield* Queue.sliding<void>(1)
      })
    })
  )
}

export const userKey = (id: string): string => id.toLowerCase()

const answerOf = (verdict: Verdict | undefined): LicenceAnswer =>
  verdict === undefined || verdict._tag === "Unknown" ? "unknown" : verdict._tag === "Licensed" ? "licensed" : "unlicensed"

/**
 * The licence check the subscription manager runs before every presence subscription: a fresh licence pass over the
 * plan's users (for `appLicence` a CheckAppLic each). Before the first plan — the master has not logged in, the
 * directory has not loaded — every answer is unknown, so a stored subscription is kept, never deleted. A served user
 * found unlicensed leaves the subscription now, and the planner re-plans (which stops writing their presence).
 */
export const LicenceCheckFromPbx = Layer.effect(
  LicenceCheck,
  Effect.gen(function*() {
    const licences = yield* Licences
    const state = yield* FlowState
    return LicenceCheck.of({
      check: Effect.fnUntraced(function*(userIds) {
        const plan = yield* SubscriptionRef.get(state.plan)
        if (!plan.ready) return new Map(userIds.map((id) => [id, "unknown" as const]))
        const served = userIds.flatMap((id) => {
          const synced = plan.byTeamsId.get(userKey(id))
          return synced === undefined ? [] : [synced]
        })
        const pass = yield* licences.assess(served.map((s) => s.pbx))
        const answers = new Map<string, LicenceAnswer>(userIds.map((id) => [id, "unlicensed"]))
        const revoked: Array<string> = []
        for (const synced of served) {
          const verdict = pass.verdicts.get(synced.pbx.guid)
          answers.set(synced.teams.id, answerOf(verdict))
          if (verdict?._tag === "Unlicensed") revoked.push(`${synced.pbx.h323}: ${verdict.reason}`)
        }
        if (revoked.length > 0) {
          yield* Effect.logWarning(
            `licence check: ${revoked.length} of ${served.length} served users no longer hold a licence and leave the ` +
              `presence subscription (${revoked.slice(0, 3).join("; ")}${revoked.length > 3 ? "; …" : ""})`
          )
          yield* Queue.offer(state.licenceChanges, undefined)
        }
        return answers
      })
    })
  })
)

/** Restarts a long-running child after a failure, with backoff, and says so in the log. */
const supervised = <E, R>(name: string, effect: Effect.Effect<void, E, R>) =>
  effect.pipe(
    Effect.tapCause((cause) => Effect.logError(`${name} failed; restarting`, cause)),
    Effect.retry(Schedule.min([Schedule.exponential("1 second", 2), Schedule.spaced("1 minute")])),
    Effect.forkScoped
  )

type Trigger = "users" | "directory"

export const FlowLayer = Layer.effectDiscard(Effect.gen(function*() {
  const settings = yield* FlowConfig
  const graphConfig = yield* GraphConfig
  const state = yield* FlowState
  const directory = yield* PbxDirectory
  const licences = yield* Licences
  const connections = yield* PbxConnections
  const writer = yield* PresenceWriter
  const teamsUsers = yield* TeamsUsers
  const source = yield* PresenceSource
  const manager = yield* Effect.serviceOption(SubscriptionManager)
  const inbox = yield* Effect.serviceOption(NotificationsInbox)
  const triggers = yield* Queue.unbounded<Trigger>()
  const guard = yield* Effect.serviceOption(CallGuard)

  /** The write for a user, unless the connector already sent the same command (only changes reach the PBX). */
  const changedWrite = (
    guid: string,
    command: PbxPresenceCommand,
    receivedAt?: number,
    decryptedAt?: number,
    span?: Tracer.AnySpan
  ): PresenceWrite | undefined => {
    const last = state.written.get(guid)
    if (last !== undefined && commandEquals(last, command)) return undefined
    state.written.set(guid, command)
    return {
      guid,
      command,
      meta: {
        ...(receivedAt !== undefined ? { receivedAt } : {}),
        ...(decryptedAt !== undefined ? { decryptedAt } : {}),
        ...(span !== undefined ? { span } : {})
      }
    }
  }

  const write = (guid: string, command: PbxPresenceCommand, receivedAt?: number) =>
    Effect.suspend(() => {
      const change = changedWrite(guid, command, receivedAt)
      return change === undefined ? Effect.void : writer.writeAll([change])
    })

  /** A chunk of presence changes → mapped, recorded for the status page, and the changed PBX presences written. */
  const onPresences = (changes: ReadonlyArray<PresenceChange>) =>
    Effect.gen(function*() {
      const plan = yield* SubscriptionRef.get(state.plan)
      const writes: Array<PresenceWrite> = []
      for (const change of changes) {
        const key = userKey(change.userId)
        // A pushed change carries its trace: the mapping is a span in it, and the parent of the SetPresence.
        const span = yield* childSpan("Flow.map", change.span)
        const result = mapPresenceDetailed(change.presence, settings.mapping)
        yield* endSpan(span, Exit.void, { "pbx.command": commandLabel(result.command), "mapping.basis": result.basis })
        if (result.basis === "none") {
          yield* Metric.update(unknownPresences, 1)
          yield* Effect.logWarning(`unknown Teams presence for ${clip(change.userId, 60)}; cleared: ${clip(change.presence, 300)}`)
        }
        state.rows.set(key, { presence: change.presence, command: result.command, receivedAt: change.receivedAt, origin: change.origin })
        state.rowsChanged.add(key)
        // The loop guard (src/connector/calls/CallGuard.ts): what only shows a PBX call's own session is not written back.
        if (Option.isSome(guard) && !(yield* guard.value.admit(key, change))) continue
        const synced = plan.byTeamsId.get(key)
        if (synced === undefined) continue
        const pending = changedWrite(synced.pbx.guid, result.command, change.receivedAt, change.decryptedAt, span)
        if (pending !== undefined) writes.push(pending)
      }
      yield* writer.writeAll(writes)
    })

  const loadTeamsUsers = teamsUsers.listTeamsUsers(settings.usersCredential).pipe(
    Effect.tap((users) => Ref.set(state.teamsUsers, Option.some(users))),
    Effect.tap((users) => Effect.logInfo(`Teams users: ${users.length} with a Teams licence`)),
    Effect.tapError((error) => Effect.logError(`listing Teams users failed: ${clip(error.message, 300)}`)),
    Effect.retry(Schedule.min([Schedule.exponential("2 seconds", 2), Schedule.spaced("2 minutes")]))
  )

  let lastSummary = ""
  /** Computes the plan from the current inputs and hands the user set to the presence source and the subscriptions. */
  /**
   * The plan from the current inputs (none while the Teams users are not known yet): match, then one licence pass over
   * the matched PBX users; a user whose licence is unknown keeps what the current plan decided.
   */
  const computePlan = Effect.gen(function*() {
    const users = yield* Ref.get(state.teamsUsers)
    if (Option.isNone(users)) return Option.none<Plan>()
    const pbxUsers = yield* directory.snapshot
    const match = matchForPlan({
      teamsUsers: users.value,
      pbxUsers: pbxUsers.values(),
      strategy: settings.strategy,
      technicalAccounts: graphConfig.accounts.map((account) => account.username)
    })
    const pass = yield* licences.assess(matchedPbxUsers(match))
    if (pass.summary.problem !== undefined) {
      yield* Effect.logWarning(`licences (${pass.summary.mode}): ${pass.summary.problem.message}. ${pass.summary.problem.fix}`)
    }
    const previous = yield* SubscriptionRef.get(state.plan)
    const held = Option.isSome(manager) ? yield* manager.value.held : undefined
    return Option.some(makePlan({ match, verdicts: pass.verdicts, licensing: pass.summary, previous, held }))
  })

  /** Hands a new plan (already in `state.plan`) to the writer, the presence source and the subscriptions. */
  const applyPlan = Effect.fnUntraced(function*(previous: Plan, plan: Plan) {
    const ids = subscribedIds(plan)
    const syncedGuids = new Set(plan.synced.map((s) => s.pbx.guid))
    // A user who is no longer synchronised must not keep a Teams presence the connector set.
    for (const [guid, command] of state.written) {
      if (!syncedGuids.has(guid)) {
        state.written.delete(guid)
        if (command._tag === "Set") yield* writer.write(guid, clearPresence)
      }
    }
    // Newly synchronised users whose presence is already known get it written now; a user now registered at another
    // PBX gets it again, on that PBX's connection (protocols.md §2.4: writes go to the user's `loc` PBX).
    for (const synced of plan.synced) {
      const before = previous.byTeamsId.get(userKey(synced.teams.id))
      if (before !== undefined) {
        const command = state.written.get(synced.pbx.guid)
        if (before.pbx.loc !== synced.pbx.loc && command !== undefined) yield* writer.write(synced.pbx.guid, command)
        continue
      }
      const row = state.rows.get(userKey(synced.teams.id))
      if (row !== undefined) yield* write(synced.pbx.guid, row.command, row.receivedAt)
    }
    yield* source.setUsers(ids)
    if (Option.isSome(manager)) yield* manager.value.setDesiredUsers(ids)
    const summary = `plan: ${plan.teamsUserCount} Teams users, ${plan.pbxUserCount} PBX users, ${plan.matchedCount} matched, ` +
      `${plan.synced.length} licensed and synchronised, ${plan.unlicensed.length} unlicensed, ${plan.unknown.length} licence unknown, ` +
      `${plan.ambiguous.length} ambiguous (licensing ${plan.licensing?.mode ?? "?"})`
    if (summary !== lastSummary) yield* Effect.logInfo(summary)
    lastSummary = summary
  })

  const replan = Effect.gen(function*() {
    const plan = yield* computePlan
    if (Option.isNone(plan)) return
    const previous = yield* SubscriptionRef.getAndSet(state.plan, plan.value)
    yield* applyPlan(previous, plan.value)
  })

  // 1. Presence changes → PBX. Subscribed before the initial sync so that nothing it reads is missed.
  const changes = Option.isSome(guard) ? Stream.merge(source.changes, guard.value.released) : source.changes
  const intake = yield* supervised("presence pipeline", Stream.runForEachArray(changes, onPresences))

  // 2. Start-up: Teams users and the master's directory, the plan, the initial sync, then subscriptions.
  const startup = Effect.gen(function*() {
    yield* loadTeamsUsers
    yield* Effect.logInfo("waiting for the master PBX's user directory")
    yield* directory.ready
    const plan = yield* computePlan
    if (Option.isNone(plan)) return
    yield* SubscriptionRef.set(state.plan, plan.value)
    const ids = subscribedIds(plan.value)
    yield* Effect.logInfo(`initial sync: reading ${ids.length} presences`)
    yield* source.initialSync(ids)
    yield* Effect.logInfo("initial sync done; presence subscriptions next")
    // The same plan, computed once: only its hand-over to the subscriptions is left.
    yield* applyPlan(emptyPlan, plan.value)
  })

  // 3. Re-planning on any input change, debounced.
  const replanner = Effect.gen(function*() {
    yield* startup
    while (true) {
      const first = yield* Queue.take(triggers)
      yield* Effect.sleep(settings.replanDebounceMillis)
      const rest = yield* Queue.clear(triggers)
      if (first === "users" || rest.includes("users")) yield* loadTeamsUsers
      yield* replan
    }
  })
  const planner = yield* supervised("planner", replanner)

  yield* supervised("directory watch", Stream.runForEach(directory.changes, () => Queue.offer(triggers, "directory")))
  yield* supervised(
    "licence watch",
    connections.changes.pipe(
      Stream.map((states) =>
        [...states.values()].map((s) => `${s.pbx}:${s.lics ?? "-"}:${s.unlicensed ?? "-"}:${s.loggedIn}:${s.apis.join(",")}`).join("|")
      ),
      Stream.changes,
      Stream.drop(1),
      Stream.runForEach(() => Queue.offer(triggers, "directory"))
    )
  )
  yield* supervised(
    "licence changes",
    Effect.forever(Effect.andThen(Queue.take(state.licenceChanges), Queue.offer(triggers, "directory")))
  )
  if (Option.isSome(inbox)) {
    yield* supervised("users notifications", Stream.runForEach(inbox.value.userChanges, () => Queue.offer(triggers, "users")))
  }
  // Teams users are also re-read on a timer: a safety net for lost user notifications, and the only way in poll mode.
  yield* supervised(
    "users refresh",
    Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(settings.usersRefreshMinutes * 60_000)
        yield* Queue.offer(triggers, "users")
      }
    })
  )

  // 4. Shutdown, in order: stop taking presence changes and re-planning, optionally clear what the connector set,
  //    then let the writer deliver what is pending. (Subscriptions are deleted, if configured, when their layer closes.)
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      yield* Fiber.interruptAll([intake, planner])
      if (settings.clearOnShutdown) {
        const toClear = [...state.written].filter(([, command]) => command._tag === "Set").map(([guid]) => guid)
        yield* Effect.logInfo(`shutting down: clearing ${toClear.length} Teams presences`)
        for (const guid of toClear) yield* writer.write(guid, clearPresence)
      }
      yield* writer.flush.pipe(Effect.timeout("10 seconds"), Effect.ignore)
    })
  )
}))
