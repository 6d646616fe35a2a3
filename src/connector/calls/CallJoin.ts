/**
 * The join of the PBX → Teams direction: the served users (the plan, optionally one PBX group) are watched on their
 * PBX; a call that lasts the debounce makes the user "in a call" in Teams through the connector's presence session,
 * and the loop guard begins; the call's end clears the session and the guard stays for its grace. Which user is in a
 * call, and since when, is kept here for the status page.
 */
import { Clock, Context, Effect, FiberMap, Layer, Stream, SubscriptionRef } from "effect"
import { teamsKey } from "../../domain/TeamsId.ts"
import { PresenceSessions } from "../../graph/sessions/PresenceSessions.ts"
import { type CallChange, CallWatch } from "../../pbx/calls/CallWatch.ts"
import { PlanState } from "../PlanState.ts"
import { CallGuard } from "./CallGuard.ts"
import { callUsers } from "./CallUsers.ts"

/** A PBX call of a served user. */
export interface TrackedCall {
  readonly guid: string
  readonly teamsId: string
  /** Clock milliseconds when the PBX call was seen to begin. */
  readonly since: number
  /** Teams shows it (the debounce has passed). */
  readonly shown: boolean
}

export interface CallJoinOptions {
  readonly debounceMillis: number
  readonly group?: string | undefined
}

export class CallJoin extends Context.Service<CallJoin, {
  readonly calls: Effect.Effect<ReadonlyArray<TrackedCall>>
}>()("teams-presence-connector/connector/calls/CallJoin") {
  static readonly layer = (options: CallJoinOptions) => Layer.effect(CallJoin, makeJoin(options))
}

const makeJoin = Effect.fnUntraced(function*(options: CallJoinOptions) {
  const planState = yield* PlanState
  const watch = yield* CallWatch
  const sessions = yield* PresenceSessions
  const guard = yield* CallGuard
  const calls = new Map<string, TrackedCall>()
  const debounces = yield* FiberMap.make<string>()
  let teamsOf: ReadonlyMap<string, string> = new Map()

  const show = Effect.fnUntraced(function*(guid: string) {
    const call = calls.get(guid)
    if (call === undefined || call.shown) return
    calls.set(guid, { ...call, shown: true })
    yield* guard.begin(teamsKey(call.teamsId), yield* Clock.currentTimeMillis)
    yield* sessions.setInCall(call.teamsId, true)
  })

  const onChange = Effect.fn("CallJoin.onChange")(function*(change: CallChange) {
    if (change.inCall) {
      const teamsId = teamsOf.get(change.guid)
      if (teamsId === undefined || calls.has(change.guid)) return
      calls.set(change.guid, { guid: change.guid, teamsId, since: change.at, shown: false })
      if (options.debounceMillis <= 0) return yield* show(change.guid)
      return yield* FiberMap.run(debounces, change.guid, Effect.andThen(Effect.sleep(options.debounceMillis), show(change.guid)))
    }
    yield* FiberMap.remove(debounces, change.guid)
    const call = calls.get(change.guid)
    calls.delete(change.guid)
    // Also for a user not in a call before: a session an earlier run left behind is cleared once the PBX says so.
    const teamsId = call?.teamsId ?? teamsOf.get(change.guid)
    if (teamsId === undefined) return
    if (call?.shown === true) yield* guard.end(teamsKey(teamsId), change.at)
    yield* sessions.setInCall(teamsId, false)
  })

  // Call changes first, so that nothing the watch reports for the first users is missed.
  yield* watch.changes.pipe(
    Stream.runForEach((change) => onChange(change).pipe(Effect.catchCause((cause) => Effect.logError("PBX → Teams: a call change failed", cause)))),
    Effect.forkScoped
  )

  // The served users follow the plan: every new plan (users, licences, directory changes) is handed to the watch.
  yield* SubscriptionRef.changes(planState.plan).pipe(
    Stream.runForEach((plan) =>
      Effect.suspend(() => {
        const users = callUsers(plan, options.group)
        teamsOf = new Map(users.map((user) => [user.guid, user.teamsId]))
        return watch.setUsers(users)
      })
    ),
    Effect.tapCause((cause) => Effect.logError("PBX → Teams: following the plan failed", cause)),
    Effect.forkScoped
  )
  return CallJoin.of({ calls: Effect.sync(() => [...calls.values()]) })
})
