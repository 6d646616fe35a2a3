/**
 * What makes the planner plan again, each a named long-running effect the flow forks and supervises: the master's user
 * table changing, any PBX's licence fields, APIs or login changing, the licence check finding a served user
 * unlicensed, a users notification from Graph, and a timer (the only users source in poll mode).
 */
import { Effect, Option, Queue, Stream } from "effect"
import { NotificationsInbox } from "../graph/notifications/NotificationsInbox.ts"
import { PbxDirectory } from "../pbx/directory/PbxDirectory.ts"
import { PbxConnections } from "../pbx/socket/PbxConnections.ts"
import { FlowConfig } from "./FlowConfig.ts"
import { Planner } from "./Planner.ts"
import { PlanState } from "./PlanState.ts"

export const triggerSources = Effect.fnUntraced(function*() {
  const settings = yield* FlowConfig
  const planner = yield* Planner
  const directory = yield* PbxDirectory
  const connections = yield* PbxConnections
  const state = yield* PlanState
  const inbox = yield* Effect.serviceOption(NotificationsInbox)
  const sources: Array<readonly [name: string, source: Effect.Effect<void>]> = [
    ["directory watch", Stream.runForEach(directory.changes, () => planner.trigger("directory"))],
    [
      "licence watch",
      connections.changes.pipe(
        Stream.map((states) =>
          [...states.values()].map((s) => `${s.pbx}:${s.lics ?? "-"}:${s.unlicensed ?? "-"}:${s.loggedIn}:${s.apis.join(",")}`).join("|")
        ),
        Stream.changes,
        Stream.drop(1),
        Stream.runForEach(() => planner.trigger("directory"))
      )
    ],
    ["licence changes", Effect.forever(Effect.andThen(Queue.take(state.licenceChanges), planner.trigger("directory")))],
    // Teams users are also re-read on a timer: a safety net for lost user notifications, and the only way in poll mode.
    ["users refresh", Effect.forever(Effect.andThen(Effect.sleep(settings.usersRefreshMinutes * 60_000), planner.trigger("users")))]
  ]
  if (Option.isSome(inbox)) {
    sources.push(["users notifications", Stream.runForEach(inbox.value.userChanges, () => planner.trigger("users"))])
  }
  return sources
})
