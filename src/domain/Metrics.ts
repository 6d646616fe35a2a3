/**
 * The connector's metrics, defined once so that every module counts into the same series and `GET /metrics`
 * renders them as Prometheus text. Labels are attached with `Metric.withAttributes` at the call site; the metrics updated
 * per change or per POST have their series per tenant made once (`perTenant`, `perTenantBy`: the `...Of` exports).
 */
import { Context, Effect, Metric } from "effect"

/** Items accepted from Graph (label `kind`: presence | users | lifecycle). */
const receivedOptions = { description: "Change notification items accepted from Microsoft Graph", incremental: true } as const
export const notificationsReceived = Metric.counter("connector_notifications_received_total", receivedOptions)

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

/** Updates of one series of a metric in the tenant's own series (`perTenant`). */
export interface TenantSeries<In> {
  /** One update, labelled with the current fiber's metric attributes (its tenant). */
  readonly update: (input: In) => Effect.Effect<void>
  /** The same with a context taken before (in a Node callback, or a loop over many values). */
  readonly updateUnsafe: (input: In, context: Context.Context<never>) => void
  /** Makes the series of `context`'s tenant — its metric object and its entry in the registry — without updating it. */
  readonly prepare: (context: Context.Context<never>) => void
}

/**
 * A series of a metric as a metric object of its own per set of the fiber's metric attributes — one set per tenant's
 * connector (Connector.ts). One metric object shared by the tenants keeps its series key (attributes merged, sorted,
 * JSON) for the last set it saw only, so with 50 tenants' updates interleaved it built the key again at nearly every
 * update (1.5–2 µs against 0.1 µs; docs/performance.md, "tenants-50: the main thread's cost per POST"); and a
 * `Metric.withAttributes` adds to the fiber's context on every update. `make` is called once per set: the attribute
 * set's object first (each connector provides one and keeps it), else its content (the same labels, the same series).
 */
export const perTenant = <In, State>(make: () => Metric.Metric<In, State>): TenantSeries<In> => {
  const byObject = new WeakMap<Readonly<Record<string, string>>, Metric.Metric<In, State>>()
  const byLabels = new Map<string, Metric.Metric<In, State>>()
  const seriesOf = (context: Context.Context<never>) => {
    const attributes = Context.get(context, Metric.CurrentMetricAttributes)
    let series = byObject.get(attributes)
    if (series === undefined) {
      const labels = JSON.stringify(Object.entries(attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      series = byLabels.get(labels)
      if (series === undefined) {
        series = make()
        byLabels.set(labels, series)
      }
      byObject.set(attributes, series)
    }
    return series
  }
  const updateUnsafe = (input: In, context: Context.Context<never>) => seriesOf(context).updateUnsafe(input, context)
  const prepare = (context: Context.Context<never>) => void seriesOf(context).valueUnsafe(context)
  return {
    prepare,
    update: (input) =>
      Effect.contextWith((context: Context.Context<never>) => {
        updateUnsafe(input, context)
        return Effect.void
      }),
    updateUnsafe
  }
}

/** `perTenant` for each value of a label (`make(value)` gives the metric with that label among its own attributes). */
export const perTenantBy = <V extends string, In, State>(make: (value: V) => Metric.Metric<In, State>) => {
  const series = new Map<V, TenantSeries<In>>()
  return (value: V): TenantSeries<In> => {
    let found = series.get(value)
    if (found === undefined) {
      found = perTenant(() => make(value))
      series.set(value, found)
    }
    return found
  }
}

/** Seconds from a notification being received (or a poll answer) to its SetPresence being sent. */
const notificationToPbxSecondsOptions = {
  description: "Delay from receiving a presence change to sending it to the PBX",
  boundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
} as const
export const notificationToPbxSeconds = Metric.histogram("connector_notification_to_pbx_seconds", notificationToPbxSecondsOptions)

/**
 * Seconds from a rich notification's item being decrypted to its SetPresence being confirmed: the connector's own
 * share of the delay, without the time the item waited for decryption behind a burst.
 */
const decryptedToPbxSecondsOptions = {
  description: "Delay from decrypting a rich notification's presence to the PBX confirming it",
  boundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
} as const
export const decryptedToPbxSeconds = Metric.histogram("connector_decrypted_to_pbx_seconds", decryptedToPbxSecondsOptions)

/**
 * Seconds the notification webhook takes from its handler starting (request routed) to its answer being produced:
 * body read, JSON parse, Schema decode, clientState check and queueing. The client sees this plus the event loop's
 * delay before the handler runs and the response is flushed.
 */
const webhookResponseSecondsOptions = {
  description: "Time the notification webhook handler takes to produce its answer",
  boundaries: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1]
} as const
export const webhookResponseSeconds = Metric.histogram("connector_webhook_response_seconds", webhookResponseSecondsOptions)

/**
 * A cluster runner: seconds a presence change spends in each stage of its path (label `stage`; src/cluster/StageTimings.ts
 * names the stages, docs/scaling.md "Where the time goes").
 */
const clusterStageSecondsOptions = {
  description: "Time a presence change spends in each stage of a cluster's path (label stage)",
  boundaries: [0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30]
} as const
export const clusterStageSeconds = Metric.histogram("connector_cluster_stage_seconds", clusterStageSecondsOptions)

/**
 * Seconds a rich notification's chunk spends in each stage between the webhook and publication (label `stage`;
 * src/graph/notifications/Stages.ts names the stages).
 */
const notificationStageSecondsOptions = {
  description: "Time a rich notification spends in each stage from the webhook to publication (label stage)",
  boundaries: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30]
} as const
export const notificationStageSeconds = Metric.histogram("connector_notification_stage_seconds", notificationStageSecondsOptions)

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

/** `notificationsReceived` of the current tenant, by `kind` (per chunk and per POST). */
export const notificationsReceivedOf = perTenantBy((kind: "presence" | "users" | "lifecycle") =>
  Metric.counter("connector_notifications_received_total", { ...receivedOptions, attributes: { kind } })
)

/** `notificationToPbxSeconds` and `decryptedToPbxSeconds` of the current tenant (per change). */
export const notificationToPbxSecondsOf = perTenant(() => Metric.histogram("connector_notification_to_pbx_seconds", notificationToPbxSecondsOptions))
export const decryptedToPbxSecondsOf = perTenant(() => Metric.histogram("connector_decrypted_to_pbx_seconds", decryptedToPbxSecondsOptions))

/** `webhookResponseSeconds` of the current tenant, by `until` (twice per POST). */
export const webhookResponseSecondsOf = perTenantBy((until: "produced" | "flushed") =>
  Metric.histogram("connector_webhook_response_seconds", { ...webhookResponseSecondsOptions, attributes: { until } })
)

/** `clusterStageSeconds` and `notificationStageSeconds` of the current tenant, by `stage`. */
export const clusterStageSecondsOf = perTenantBy((stage: string) =>
  Metric.histogram("connector_cluster_stage_seconds", { ...clusterStageSecondsOptions, attributes: { stage } })
)
/** The stages of `notificationStageSeconds`, in the order a rich item passes them (Stages.ts). */
export const notificationStages = ["intake", "held", "decrypt", "publish"] as const

export const notificationStageSecondsOf = perTenantBy((stage: string) =>
  Metric.histogram("connector_notification_stage_seconds", { ...notificationStageSecondsOptions, attributes: { stage } })
)

/**
 * Makes the current tenant's series of the metrics each notification updates, before its first notification
 * (WarmUp.ts): with many tenants starting together, every tenant's first notification otherwise also makes them (the
 * series key, the metric object and the registry entry of each: ≈ 0.8 ms of the main thread per tenant), all within
 * the first fraction of a second of a burst across the tenants. A series made here reads 0 until its first update.
 */
export const prepareNotificationSeries = (context: Context.Context<never>): void => {
  notificationsReceivedOf("presence").prepare(context)
  notificationToPbxSecondsOf.prepare(context)
  decryptedToPbxSecondsOf.prepare(context)
  webhookResponseSecondsOf("produced").prepare(context)
  webhookResponseSecondsOf("flushed").prepare(context)
  for (const stage of notificationStages) notificationStageSecondsOf(stage).prepare(context)
}
