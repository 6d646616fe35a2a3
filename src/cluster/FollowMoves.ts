/**
 * The owner's half of a user moved to another PBX (docs/scaling.md, "Routing"): the one-process writer sends a user
 * again on the PBX the user table now places them on (src/pbx/writer/Resend.ts); in a cluster the owner keys the
 * user's command again instead, so that the new PBX's socket holder sends it and the former one's fence forgets it.
 */
import { Effect, Stream } from "effect"
import type { DirectoryChange } from "../pbx/directory/PbxDirectory.ts"

/**
 * The users a batch of user-table edits may have moved: a user whose `loc` changed, a user added (a command for a user
 * the table did not know was keyed to the master); `undefined` after a reload of the whole table (every user).
 * A removed user is not moved: the planner decides what they get.
 */
export const movedBy = (changes: ReadonlyArray<DirectoryChange>): ReadonlySet<string> | undefined => {
  const guids = new Set<string>()
  for (const change of changes) {
    switch (change._tag) {
      case "Reset":
        return undefined
      case "Added":
        guids.add(change.user.guid)
        break
      case "Updated":
        if (change.user.loc !== change.previous.loc) guids.add(change.user.guid)
        break
      case "Removed":
        break
    }
  }
  return guids
}

/**
 * Follows the user table: every batch of edits that moved users re-keys their commands at once (`rekey` puts the
 * moved ones in one batch; it compares each user's PBX now with the one their latest command was keyed to).
 */
export const followMoves = (
  changes: Stream.Stream<DirectoryChange>,
  rekey: (guids: Iterable<string> | undefined) => Effect.Effect<number>
) =>
  Stream.runForEachArray(changes, (batch) =>
    Effect.gen(function*() {
      const guids = movedBy(batch)
      if (guids !== undefined && guids.size === 0) return
      const moved = yield* rekey(guids)
      if (moved > 0) yield* Effect.logInfo(`cluster: ${moved} users' PBX commands keyed again after the user table moved them to another PBX`)
    })).pipe(Effect.forkScoped({ startImmediately: true }))
