/**
 * Where a rich notification's item spends its time between the webhook and its SetPresence (docs/performance.md,
 * "tenants-50"): one histogram, `connector_notification_stage_seconds`, labelled by `stage`, observed once per chunk
 * (a POST's rich items, up to 50). The stages, in the order an item passes them:
 *
 * - `intake`: the POST received → the inbox's processor took its batch (Intake.ts's queue);
 * - `held`: taken → handed to the decrypt workers (waiting for a dispatcher's turn, Decryption.ts);
 * - `decrypt`: handed → the workers' answer resumed the dispatcher (the message out, the worker's queue and work, the
 *   answer back, and the turn of the event loop that runs it);
 * - `publish`: answered → published to the presence source (behind earlier chunks, the tokens' check, the publisher);
 * - then `connector_decrypted_to_pbx_seconds`: published → SetPresence confirmed by the PBX.
 */
import type { Effect } from "effect"
import { notificationStageSecondsOf, type notificationStages } from "../../domain/Metrics.ts"

export type NotificationStage = typeof notificationStages[number]

/** One observation of `stage`: from `since` to `until` (Clock milliseconds). */
export const recordStage = (stage: NotificationStage, since: number, until: number): Effect.Effect<void> =>
  notificationStageSecondsOf(stage).update(Math.max(0, until - since) / 1000)
