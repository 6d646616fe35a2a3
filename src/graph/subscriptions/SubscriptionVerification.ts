/**
 * Between renewals each live presence subscription is looked up (GET, cheap): one that Graph deleted or let expire
 * answers 404. The shard turns red with the reason (published at once, so the status page shows it) and is recreated,
 * which also re-reads its users' presences. Other failures are left to the next look or renewal.
 */
import { Effect } from "effect"
import { accountRef } from "../client/GraphSettings.ts"
import { recreateShard, type ShardContext } from "./PresenceShards.ts"
import { isNotFound } from "./SubscriptionApi.ts"
import { countFailure, type Shard } from "./SubscriptionState.ts"

/** Looks one shard's subscription up; true when it was gone and has been recreated. */
const verifyShard = Effect.fn("SubscriptionVerification.verifyShard")(function*(ctx: ShardContext, shard: Shard) {
  if (shard.account === undefined || shard.live === undefined) return false
  const id = shard.live.subscriptionId
  const found = yield* ctx.api.get(accountRef(shard.account), id).pipe(Effect.result)
  if (found._tag === "Success" || !isNotFound(found.failure)) return false
  yield* countFailure("presence", found.failure)
  shard.status = "error"
  shard.error = "the presence subscription no longer exists on the Graph side (deleted or expired); recreating it"
  yield* ctx.showState
  yield* Effect.logWarning(`presence subscription ${id} no longer exists on the Graph side (deleted or expired); recreating it`).pipe(
    Effect.annotateLogs({ shard: shard.key, subscriptionId: id })
  )
  yield* recreateShard(ctx, shard)
  return true
})

/** Looks every shard up, in turn; true when any was recreated. */
export const verifyShards = Effect.fn("SubscriptionVerification.verifyShards")(function*(ctx: ShardContext) {
  const recreated = yield* Effect.forEach(ctx.book.shards, (shard) => verifyShard(ctx, shard))
  return recreated.some((r) => r)
})
