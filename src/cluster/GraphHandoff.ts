/**
 * Graph notifications accepted by any runner (docs/scaling.md, "Graph notifications on any runner"). A runner that
 * does not serve the tenant itself checks the POST against the tenant's subscriptions in the store (subscriptionId and
 * clientState; HandoffIntake.ts), puts what passes into `connector_graph_handoff` and answers 202 once that row is
 * committed; the put notifies `connector_graph_handoff` with the tenant. The tenant's owner takes its rows — in order,
 * only while its owner epoch is the current one — and hands them to its connector's inbox, which checks them again,
 * decrypts and applies them as if they had been posted to it. Rows wait in the table while the tenant is between
 * owners, so a handover neither loses them nor makes Graph wait.
 */
import type { PgClient } from "@effect/sql-pg"
import { Cause, Effect, PubSub, Schedule, Schema, type Scope, Semaphore } from "effect"
import { clip } from "../domain/LogText.ts"
import type { ChangeNotificationCollection, LifecycleNotificationCollection } from "../graph/notifications/Notifications.ts"
import { decodeChangeNotifications, decodeLifecycleNotifications } from "../graph/notifications/Notifications.ts"
import type { NotificationsInbox } from "../graph/notifications/NotificationsInbox.ts"
import { listenForever } from "../state/postgres/PgListen.ts"
import { Int64 } from "../state/postgres/PgRows.ts"
import { TenantId } from "../state/StateStore.ts"
import { describeCause } from "../state/StateStoreError.ts"
import { recordStage } from "./StageTimings.ts"
import { makeTenantHubs } from "./TenantHubs.ts"

export const handoffChannel = "connector_graph_handoff"

export type HandoffKind = "change" | "lifecycle"

/** What a runner hands over: the POST's accepted items, still encrypted as Graph sent them. */
export type HandoffBody = ChangeNotificationCollection | LifecycleNotificationCollection

/** `waited`: milliseconds from the row's commit to its take, both by the database's clock. */
const HandoffRow = Schema.Struct({ id: Int64, kind: Schema.Literals(["change", "lifecycle"]), body: Schema.Unknown, waited: Schema.Number })

/** Rows taken by the owner at a time. */
const takeLimit = 100
/**
 * Without any wake-up, each runner looks this often which tenants have rows waiting (a lost notification, a pass that
 * failed), in one statement for all of them, and wakes the drains of those it runs.
 */
const safetyInterval = "5 seconds"

export interface GraphHandoff {
  /** Stores the batch for the tenant's owner and wakes it; done once committed. */
  readonly put: (tenant: TenantId, kind: HandoffKind, body: HandoffBody) => Effect.Effect<void, unknown>
  /**
   * Hands the tenant's rows to `inbox` for as long as the scope lasts: now, on every wake-up for the tenant and every
   * few seconds. Rows are taken only with the tenant's current owner epoch, so a former owner never takes them.
   */
  readonly drain: (tenant: TenantId, epoch: number, inbox: NotificationsInbox["Service"]) => Effect.Effect<void, never, Scope.Scope>
  /** One pass of `drain` (the owner's first, before its connector takes notifications directly). */
  readonly drainOnce: (tenant: TenantId, epoch: number, inbox: NotificationsInbox["Service"]) => Effect.Effect<number, unknown>
}

/** The table, created once by whichever runner comes first, and the hourly sweep of rows nobody took. */
const prepareTable = Effect.fnUntraced(function*(sql: PgClient.PgClient) {
  // Runners start at once: the advisory lock keeps two CREATEs of the same table from colliding.
  yield* sql.withTransaction(Effect.gen(function*() {
    yield* sql`SELECT pg_advisory_xact_lock(hashtext(${handoffChannel}))`
    yield* sql`CREATE TABLE IF NOT EXISTS connector_graph_handoff (
      id bigserial PRIMARY KEY,
      tenant_id text NOT NULL,
      kind text NOT NULL,
      body jsonb NOT NULL,
      received_at timestamptz NOT NULL DEFAULT now()
    )`
    yield* sql`CREATE INDEX IF NOT EXISTS connector_graph_handoff_tenant ON connector_graph_handoff (tenant_id, id)`
  }))
  // Rows nobody takes (a tenant removed while between owners) are dropped after an hour: the owner's reconciliation has
  // corrected what they carried long before.
  yield* sql`DELETE FROM connector_graph_handoff WHERE received_at < now() - interval '1 hour'`.pipe(
    Effect.ignore,
    Effect.repeat(Schedule.spaced("10 minutes")),
    Effect.forkScoped
  )
})

/** The table, the runner's one LISTEN, put and drain. */
export const makeGraphHandoff = Effect.fnUntraced(function*(sql: PgClient.PgClient) {
  yield* prepareTable(sql)
  // A NOTIFY wakes the drain of the tenant it names only (every runner receives every tenant's: TenantHubs.ts).
  const wakeups = makeTenantHubs<"changed" | "resync">(64)
  yield* listenForever(
    sql,
    handoffChannel,
    (payload) => Schema.is(TenantId)(payload) ? wakeups.publish(payload, "changed") : Effect.void,
    wakeups.publishAll("resync")
  )
  // One look per runner, not one per tenant it owns: at 50 tenants that was 10 statements a second across the runners.
  yield* sql<{ tenant_id: string }>`SELECT DISTINCT tenant_id FROM connector_graph_handoff`.pipe(
    Effect.flatMap((rows) =>
      Effect.forEach(rows, ({ tenant_id }) => (Schema.is(TenantId)(tenant_id) ? wakeups.publish(tenant_id, "changed") : Effect.void), { discard: true })
    ),
    Effect.catchCause((cause) => Effect.logWarning(`cluster: looking for handed-over notifications failed: ${clip(describeCause(Cause.squash(cause)), 300)}`)),
    Effect.delay(safetyInterval),
    Effect.forever,
    Effect.forkScoped
  )

  const put: GraphHandoff["put"] = (tenant, kind, body) =>
    sql`WITH row AS (
        INSERT INTO connector_graph_handoff (tenant_id, kind, body) VALUES (${tenant}, ${kind}, ${sql.json(body)}) RETURNING tenant_id
      ) SELECT pg_notify(${handoffChannel}, tenant_id) FROM row`.pipe(Effect.asVoid)

  /** Takes (deletes) the oldest rows of the tenant, unless `epoch` is no longer the tenant's owner epoch. */
  const take = (tenant: TenantId, epoch: number) =>
    sql`DELETE FROM connector_graph_handoff WHERE id IN (
        SELECT id FROM connector_graph_handoff WHERE tenant_id = ${tenant} ORDER BY id LIMIT ${takeLimit} FOR UPDATE SKIP LOCKED
      ) AND EXISTS (SELECT 1 FROM tenant_owner WHERE tenant_id = ${tenant} AND epoch = ${epoch})
      RETURNING id, kind, body, (extract(epoch FROM clock_timestamp() - received_at) * 1000)::float8 AS waited`.pipe(
      Effect.flatMap(Schema.decodeUnknownEffect(Schema.Array(HandoffRow))),
      Effect.map((rows) => [...rows].sort((a, b) => a.id - b.id))
    )

  const deliver = Effect.fnUntraced(function*(inbox: NotificationsInbox["Service"], row: typeof HandoffRow.Type) {
    if (row.kind === "lifecycle") {
      const body = decodeLifecycleNotifications(row.body)
      if (body._tag === "Success") yield* inbox.acceptLifecycle(body.value)
      return
    }
    const body = decodeChangeNotifications(row.body)
    if (body._tag === "Success") yield* inbox.acceptNotifications(body.value)
  })

  const drainOnce: GraphHandoff["drainOnce"] = Effect.fnUntraced(function*(tenant, epoch, inbox) {
    let taken = 0
    while (true) {
      const rows = yield* take(tenant, epoch)
      for (const row of rows) yield* recordStage("handoff_wait", row.waited)
      for (const row of rows) yield* deliver(inbox, row)
      taken += rows.length
      if (rows.length < takeLimit) return taken
    }
  })

  const drain: GraphHandoff["drain"] = Effect.fnUntraced(function*(tenant, epoch, inbox) {
    const subscription = yield* wakeups.subscribe(tenant)
    // One pass at a time, so rows reach the inbox in the order they were put.
    const lock = yield* Semaphore.make(1)
    const pass = lock.withPermits(1)(drainOnce(tenant, epoch, inbox)).pipe(
      Effect.timeout("10 seconds"),
      Effect.catchCause((cause) => Effect.logWarning(`cluster: handed-over notifications of ${tenant} not taken yet: ${clip(describeCause(Cause.squash(cause)), 300)}`))
    )
    yield* Effect.gen(function*() {
      while (true) {
        // Everything that came meanwhile is one pass: a pass takes every row there is.
        yield* PubSub.takeAll(subscription)
        yield* pass
      }
    }).pipe(Effect.forkScoped)
    // The first pass now; later ones on wake-ups (a NOTIFY, a resync, the runner's look every few seconds).
    yield* pass.pipe(Effect.forkScoped)
  })

  return { put, drain, drainOnce } satisfies GraphHandoff
})
