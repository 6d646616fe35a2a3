/**
 * The initial load of the PBX user table (docs/protocol-notes.md, "the user table"): ReplicateStart, then ReplicateNext
 * until a ReplicateNextResult without `columns` says the table is complete. Each answer carries one row. Several
 * ReplicateNext are kept in flight (`window`), each correlated with its answer by `src`, so that the load is not one
 * network round trip per user; the answers come back in the order they were asked for on the one connection.
 */
import { Effect, Queue, Schema } from "effect"
import { clip } from "../../domain/LogText.ts"
import type { PbxConnection, RequestOutcome } from "../socket/PbxConnection.ts"
import { isUserObject, pseudoType, ReplicateNextResult, replicateStart } from "../socket/PbxMessages.ts"
import { type PbxUser, userFromRow } from "./PbxUser.ts"

/**
 * ReplicateNext in flight at once during the initial load. UNCONFIRMED that a PBX answers several in flight
 * (docs/protocol-notes.md): the SDK documents a result for every request and the `src` echo that correlates them,
 * not how many may wait. A load that times out is started again with a window of 1 (PbxDirectory.ts `follow`).
 */
export const replicationWindow = 16

const decodeNext = Schema.decodeUnknownResult(ReplicateNextResult)
const next = { api: "PbxTableUsers", mt: "ReplicateNext" } as const

export interface LoadedTable {
  readonly loaded: Map<string, PbxUser>
  /** The objects that are not people, left out: "3 waiting, 1 trunk" ("" when none). */
  readonly ignored: string
}

/** The initial load over `connection` with `window` ReplicateNext in flight; fails with the first failed request. */
export const loadTable = Effect.fn("PbxDirectory.load")(function*(connection: PbxConnection, window: number) {
  yield* connection.request(replicateStart)
  const loaded = new Map<string, PbxUser>()
  const others = new Map<string, number>()
  const answers = yield* Queue.unbounded<RequestOutcome>()
  const ask = connection.requestWith(next, (outcome) => void Queue.offerUnsafe(answers, outcome))
  let inFlight = 0
  let complete = false
  for (let i = 0; i < Math.max(1, window); i++, inFlight++) yield* ask
  while (inFlight > 0) {
    const outcome = yield* Queue.take(answers)
    inFlight--
    if (outcome._tag === "Failed") return yield* outcome.error
    const result = decodeNext(outcome.result)
    if (result._tag === "Failure") {
      yield* Effect.logWarning(`PBX ${connection.pbx}: ignored a malformed ReplicateNextResult: ${clip(result.failure.message, 300)}`)
    } else if (result.success.columns === undefined) {
      // The table is complete; the answers still in flight are waited for (they are empty on a PBX that answers in order).
      complete = true
      continue
    } else {
      const row = result.success.columns
      if (isUserObject(row)) loaded.set(row.guid, userFromRow(row))
      else others.set(pseudoType(row.pseudo), (others.get(pseudoType(row.pseudo)) ?? 0) + 1)
    }
    if (!complete) {
      yield* ask
      inFlight++
    }
  }
  return { loaded, ignored: [...others].map(([type, count]) => `${count} ${type}`).join(", ") } satisfies LoadedTable
})
