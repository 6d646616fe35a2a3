/**
 * The connector's metrics, defined once so that every module counts into the same series and `GET /metrics`
 * renders them as Prometheus text. Labels are attached with `Metric.withAttributes` at the call site.
 */
import { Metric } from "effect"

/** Items accepted from Graph (label `kind`: presence | users | lifecycle). */
export const notificationsReceived = Metric.counter("connector_notifications_received_total", {
  description: "Change notification items accepted from Microsoft Graph",
  incremental: true
})

/** Rich presence items not decrypted because the decryption backlog was over its latency budget: their users' presence was read instead. */
export const floodFallbackItems = Metric.counter("connector_flood_fallback_items_total", {
  description: "Rich presence notifications read with getPresencesByUserId instead of decrypted (decryption backlog over its latency budget)",
  incremental: true
})

/** Items or bodies refused (label `reason`: malformed | too_large | unknown_subscription | client_state | hmac | decrypt | validation_token | stale). */
export const notificationsRejected = Metric.counter("connector_notifications_rejected_total", {
  description: "Change notifications refused and never applied",
  incremental: true
})

const pbxWritesDescription = "SetPresence requests sent to a PBX"

/** SetPresence messages sent (labels `pbx`, `result`: ok | error). */
export const pbxWrites = Metric.counter("connector_pbx_writes_total", { description: pbxWritesDescription, incremental: true })

/**
 * `pbxWrites`' series of one PBX and result, the labels part of the metric itself. Counted per write: a
 * `Metric.withAttributes` of the one `pbxWrites` would add to the fiber's context on every update, and alternating
 * between two PBXs would make the shared metric compute its series key again each time.
 */
export const pbxWritesOf = (pbx: string, result: "ok" | "error") =>
  Metric.counter("connector_pbx_writes_total", { description: pbxWritesDescription, incremental: true, attributes: { pbx, result } })

/**
 * `metric` with one attribute set to each value of `name`, each series made once and kept (Metric.withAttributes copies
 * the attributes on every call, which a per-change observation should not pay).
 */
export const seriesBy = <V extends string>(metric: Metric.Metric<number, unknown>, name: string) => {
  const series = new Map<V, Metric.Metric<number, unknown>>()
  return (value: V): Metric.Metric<number, unknown> => {
    let found = series.get(value)
    if (found === undefined) {
      found = Metric.withAttributes(metric, { [name]: value })
      series.set(value, found)
    }
    return found
  }
}

/** Seconds from a notification being received (or a poll answer) to its SetPresence being sent. */
export const notificationToPbxSeconds = Metric.histogram("connector_notification_to_pbx_seconds", {
  description: "Delay from receiving a presence change to sending it to the PBX",
  boundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
})

/**
 * Seconds from a rich notification's item being decrypted to its SetPresence being confirmed: the connector's own
 * share of the delay, without the time the item waited for decryption behind a burst.
 */
export const decryptedToPbxSeconds = Metric.histogram("connector_decrypted_to_pbx_seconds", {
  description: "Delay from decrypting a rich notification's presence to the PBX confirming it",
  boundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
})

/**
 * Seconds the notification webhook takes from its handler starting (request routed) to its answer being produced:
 * body read, JSON parse, Schema decode, clientState check and queueing. The client sees this plus the event loop's
 * delay before the handler runs and the response is flushed.
 */
export const webhookResponseSeconds = Metric.histogram("connector_webhook_response_seconds", {
  description: "Time the notification webhook handler takes to produce its answer",
  boundaries: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1]
})

/**
 * A cluster runner: seconds a presence change spends in each stage of its path (label `stage`; src/cluster/StageTimings.ts
 * names the stages, docs/scaling.md "Where the time goes").
 */
export const clusterStageSeconds = Metric.histogram("connector_cluster_stage_seconds", {
  description: "Time a presence change spends in each stage of a cluster's path (label stage)",
  boundaries: [0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30]
})

/**
 * Seconds a rich notification's chunk spends in each stage between the webhook and publication (label `stage`;
 * src/graph/notifications/Stages.ts names the stages).
 */
export const notificationStageSeconds = Metric.histogram("connector_notification_stage_seconds", {
  description: "Time a rich notification spends in each stage from the webhook to publication (label stage)",
  boundaries: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30]
})

/** Subscription renewals (label `kind`: presence | users). */
export const subscriptionRenewals = Metric.counter("connector_subscription_renewals_total", {
  description: "Graph subscription renewals that succeeded",
  incremental: true
})

/** Subscription create/renew failures (labels `kind`, `reason`). */
export const subscriptionFailures = Metric.counter("connector_subscription_failures_total", {
  description: "Graph subscription creations or renewals that failed",
  incremental: true
})

/** Graph HTTP requests (label `status`: the HTTP status, or `network`). */
export const graphRequests = Metric.counter("connector_graph_requests_total", {
  description: "Requests sent to Microsoft Graph and the identity platform, by status",
  incremental: true
})

/** 429 answers from Graph. */
export const graphThrottled = Metric.counter("connector_graph_throttled_total", {
  description: "Requests Graph answered with 429 Too Many Requests",
  incremental: true
})

/** Presences whose activity and availability were both unknown (mapped to clear). */
export const unknownPresences = Metric.counter("connector_presence_unknown_total", {
  description: "Presences with an unknown activity and availability, mapped to clear",
  incremental: true
})

/** Failed password checks (label `endpoint`: pbx | status; `outcome`: failed | refused — refused ones are not checked). */
export const loginFailures = Metric.counter("connector_login_failures_total", {
  description: "Failed logins of PBX App objects and of the status page, and attempts refused during a source's backoff",
  incremental: true
})

/** Connections closed for sending a frame (or, before login, more bytes) over the limit (label `phase`: login | session). */
export const oversizedFrames = Metric.counter("connector_pbx_oversized_frames_total", {
  description: "PBX websocket connections closed for a frame over the limit",
  incremental: true
})

/** Presence reads that failed and are being retried (gauge: users waiting for a retry). */
export const presenceReadsPending = Metric.gauge("connector_presence_reads_retrying", {
  description: "Users whose presence read failed and is being retried with backoff"
})

/**
 * PBX websocket connections that ended (labels `stage`: login | connected; `reason`: closed | socket_error | timeout |
 * refused | defect | connector). A connection that fails before logging in is counted here and logged with its cause.
 */
export const pbxConnectionEnds = Metric.counter("connector_pbx_connection_ends_total", {
  description: "PBX websocket connections that ended, by stage and reason",
  incremental: true
})
