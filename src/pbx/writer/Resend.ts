/**
 * The writer owns where a user's presence goes (Dispatcher.ts `routeOf`), so it also follows what changes that: a PBX
 * that logs in gets the current state of every user that belongs on it, and a user the directory moves to another PBX
 * gets the presence again there. Nothing else ever asks the writer to send a command it already holds.
 */
import { Effect, PubSub, type Scope, Stream } from "effect"
import type { DirectoryChange } from "../directory/PbxDirectory.ts"
import type { ConnectionEvent } from "../socket/PbxConnections.ts"
import { type Dispatcher, routeOf, wakeFor } from "./Dispatcher.ts"

/** After a PBX logs in, every user whose writes belong on it is sent again (on the new connection). */
const resendOnLogin = Effect.fnUntraced(function*(dispatcher: Dispatcher, event: ConnectionEvent) {
  if (event._tag !== "Up") return
  const pbx = event.connection.pbx
  dispatcher.state.connectionUp(pbx, event.connection.id)
  const guids: Array<string> = []
  for (const guid of dispatcher.state.desired.keys()) {
    if ((yield* routeOf(dispatcher, guid)).pbx === pbx) guids.push(guid)
  }
  if (guids.length > 0) yield* Effect.logInfo(`PBX ${pbx} logged in: sending the presence of ${guids.length} users again`)
  yield* wakeFor(dispatcher, guids)
})

/** Users the directory change may have moved: those it names, or every user with a command after a reload of the table. */
const touched = (dispatcher: Dispatcher, change: DirectoryChange): Iterable<string> => {
  switch (change._tag) {
    case "Added":
    case "Updated":
      return [change.user.guid]
    case "Removed":
      return []
    case "Reset":
      return dispatcher.state.desired.keys()
  }
}

/**
 * A user whose confirmed write is on another PBX than the one they now belong on is sent again; so is a user with a
 * command never written — it may have waited for a PBX not connected here (the master, the route of a user the table
 * did not know yet: a cluster's PBX side holding only a slave's socket, before the store's table reached it).
 */
const resendMoved = Effect.fnUntraced(function*(dispatcher: Dispatcher, change: DirectoryChange) {
  const moved: Array<string> = []
  for (const guid of touched(dispatcher, change)) {
    if (!dispatcher.state.desired.has(guid)) continue
    const confirmed = dispatcher.state.confirmed.get(guid)
    if (confirmed === undefined || (yield* routeOf(dispatcher, guid)).pbx !== confirmed.pbx) moved.push(guid)
  }
  yield* wakeFor(dispatcher, moved)
})

/** Forks the two followers into the writer's scope; `events` is subscribed before the writer serves anything. */
export const followRoutes = Effect.fnUntraced(function*(
  dispatcher: Dispatcher,
  events: PubSub.Subscription<ConnectionEvent>
): Effect.fn.Return<void, never, Scope.Scope> {
  yield* Effect.forkScoped(Effect.forever(Effect.flatMap(PubSub.take(events), (event) => resendOnLogin(dispatcher, event))))
  yield* Effect.forkScoped(Stream.runForEach(dispatcher.directory.changes, (change) => resendMoved(dispatcher, change)))
})
