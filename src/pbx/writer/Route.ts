/**
 * Where a user's presence is written (protocols.md §2.4, §2.6): on the connection of the user's `loc` PBX when that PBX
 * has an App connection, else on the master's. Resend.ts follows what changes the answer.
 */
import { Effect, Option, SubscriptionRef } from "effect"
import type { PbxDirectory, PbxUser } from "../directory/PbxDirectory.ts"
import type { PbxSettings } from "../PbxSettings.ts"
import type { PbxConnections } from "../socket/PbxConnections.ts"

export interface Route {
  readonly user: Option.Option<PbxUser>
  readonly pbx: string
}

/** The PBX a user's writes go to: its `loc` PBX when that PBX has an App connection (now or before), else the master. */
export const routeOf = Effect.fnUntraced(function*(
  services: {
    readonly settings: PbxSettings["Service"]
    readonly connections: PbxConnections["Service"]
    readonly directory: PbxDirectory["Service"]
  },
  guid: string
): Effect.fn.Return<Route> {
  const user = yield* services.directory.get(guid)
  const states = yield* SubscriptionRef.get(services.connections.states)
  const loc = Option.getOrUndefined(Option.map(user, (value) => value.loc))
  return { user, pbx: loc !== undefined && loc !== "" && states.has(loc) ? loc : services.settings.masterPbx }
})
