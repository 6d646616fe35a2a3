/**
 * One writer per PBX user across PBXs (docs/scaling.md, "One writer per user"): the check a socket holder's writer makes
 * before it sends a user's command again (a retry, a re-send on a login or a user-table change, a write that waited;
 * src/pbx/writer/SendFence.ts). The store's latest row of each user, read for the whole batch in one statement, decides:
 * the command is still this runner's to send only while the row is keyed to a PBX logged in here whose socket lease this
 * runner holds (or none does yet: a first login here not yet looked at), and still says the command the writer holds.
 * Anything else — the owner keyed the user to a PBX another runner holds, that PBX's lease moved, a newer command is on
 * its way — is forgotten by the writer and no longer handed here.
 */
import { Effect, SubscriptionRef } from "effect"
import { commandEquals, type PbxPresenceCommand } from "../domain/PbxPresence.ts"
import type { makeLeases, Sides } from "./DesiredHandover.ts"

/** The writer's check (PresenceWriter `fence`) for the sender of `sides` with its `leases`. */
export const userFence = (sides: Sides, leases: ReturnType<typeof makeLeases>) =>
  Effect.fn("DesiredSender.fence")(function*(held: ReadonlyMap<string, PbxPresenceCommand>) {
    const rows = yield* sides.store.desired.latest(sides.tenant, [...held.keys()])
    const states = yield* SubscriptionRef.get(sides.connections.states)
    const kept = new Set<string>()
    for (const row of rows) {
      const command = held.get(row.guid)
      // The lease's holder, not its epoch: a login here may take the next epoch while the check runs.
      const here = states.get(row.pbx)?.loggedIn === true && (row.holder === undefined || row.holder === sides.runner)
      if (here && command !== undefined && commandEquals(command, row.command)) kept.add(row.guid)
    }
    // The writer forgets the others (and logs them): nothing of them is left to confirm here — unless a newer command
    // was handed over while the check ran (the writer then sends that one, and it is confirmed as any other).
    for (const [, lease] of leases.current()) {
      for (const [guid, command] of held) {
        const handed = lease.handed.get(guid)
        if (!kept.has(guid) && handed !== undefined && commandEquals(handed.command, command)) lease.handed.delete(guid)
      }
    }
    return kept
  })
