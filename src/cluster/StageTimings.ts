/**
 * Where a presence change spends its time on its way through a cluster (docs/scaling.md, "Where the time goes"): one
 * histogram, `connector_cluster_stage_seconds`, labelled by `stage`, on each runner's `/metrics`. The stages, in the
 * order a change passes them:
 *
 * - `post_direct` / `post_forward` / `post_handoff`: a Graph POST at the runner's front → answered by the tenant's
 *   connector here, → answered by the owner's runner (another runner owns the tenant), or → its batch committed into
 *   `connector_graph_handoff` (no live owner elsewhere, or it did not answer);
 * - `handoff_wait`: a handed-over batch committed → taken by the owner (the database's clock at both ends);
 * - `flow`: the owner's connector applied the presence (after decryption) → its desired-command writer has it;
 * - `put`: the writer has it → its `pbx_desired` row committed (the put's queue, the pool and the transaction);
 * - `notify`: the put's NOTIFY sent (the database's clock) → received by a runner's LISTEN connection (this runner's
 *   clock: the two agree only on one host or with synchronised clocks);
 * - `notify_hop`: received there → handed to the runner's senders (the wake-up stream);
 * - `wake_to_read`: that NOTIFY received → the socket holder's sender has read the rows (a batch in progress first);
 * - `row_to_read`: a row written → read by the holder of its PBX (the database's clock at both ends);
 * - `pbx_send`: rows read → the PBX answered their SetPresence (the writer's flush);
 * - `confirm`: the confirmation statement.
 */
import { Clock, Effect } from "effect"
import { clusterStageSecondsOf } from "../domain/Metrics.ts"

export type ClusterStage =
  | "post_direct"
  | "post_forward"
  | "post_handoff"
  | "handoff_wait"
  | "flow"
  | "put"
  | "notify"
  | "notify_hop"
  | "wake_to_read"
  | "row_to_read"
  | "pbx_send"
  | "confirm"

/** One observation of `stage`, in milliseconds. */
export const recordStage = (stage: ClusterStage, millis: number): Effect.Effect<void> =>
  clusterStageSecondsOf(stage).update(Math.max(0, millis) / 1000)

/** One observation of `stage` from `since` (Clock milliseconds) to now. */
export const recordStageSince = (stage: ClusterStage, since: number): Effect.Effect<void> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => recordStage(stage, now - since))

/** Times `effect` as `stage`. */
export const timedStage = <A, E, R>(stage: ClusterStage, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Clock.currentTimeMillis, (since) => Effect.tap(effect, () => recordStageSince(stage, since)))
