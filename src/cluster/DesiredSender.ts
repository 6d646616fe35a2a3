/**
 * The socket holder's half of the desired commands (docs/scaling.md, "PBX writes" and "One writer per PBX"): what the
 * PBXs logged in here have not confirmed, sent through the real PresenceWriter and confirmed in the store.
 *
 * Each PBX's socket is leased: a login here takes the PBX's lease in the store (the next epoch), and every read of
 * what to send and every confirmation carries that epoch and is refused once another runner took the lease (the PBX
 * logged in there). A refused sender sends that PBX nothing more and closes its socket, so one PBX has one writer.
 */
import { Clock, Context, Effect, Layer, PubSub, Queue, Schedule, type Scope, Stream, SubscriptionRef } from "effect"
import { clip } from "../domain/LogText.ts"
import { commandEquals } from "../domain/PbxPresence.ts"
import type { PresenceWriter } from "../pbx/writer/PresenceWriter.ts"
import type { PbxConnections } from "../pbx/socket/PbxConnections.ts"
import { type DesiredWakeup, StateStore, type StateStoreError, type TenantId } from "../state/StateStore.ts"
import { describeCause } from "../state/StateStoreError.ts"
import { recordStage, recordStageSince, timedStage } from "./StageTimings.ts"

/**
 * One LISTEN per runner, shared by its tenants. `local` wakes this runner's senders of a PBX at once, without waiting
 * for the put's NOTIFY to come back from the database (an owner whose PBX's socket is on its own runner).
 */
export class DesiredWakeups extends Context.Service<DesiredWakeups, {
  readonly subscribe: Effect.Effect<PubSub.Subscription<DesiredWakeup>, never, Scope.Scope>
  readonly local: (tenant: TenantId, pbx: string) => Effect.Effect<void>
}>()("teams-presence-connector/cluster/DesiredWakeups") {
  static readonly layer = Layer.effect(DesiredWakeups, Effect.gen(function*() {
    const store = yield* StateStore
    const hub = yield* PubSub.sliding<DesiredWakeup>(4096)
    yield* store.desired.wakeups.pipe(
      Stream.runForEach((wakeup) =>
        Effect.andThen(
          wakeup.kind === "changed" && wakeup.at !== undefined && wakeup.receivedAt !== undefined
            ? Effect.andThen(recordStage("notify", wakeup.receivedAt - wakeup.at), recordStageSince("notify_hop", wakeup.receivedAt))
            : Effect.void,
          PubSub.publish(hub, wakeup)
        )
      ),
      Effect.tapError((error) => Effect.logWarning(`cluster: PBX wake-ups failed (${describeCause(error)}); listening again`)),
      Effect.retry(Schedule.spaced("2 seconds")),
      Effect.forkScoped
    )
    return DesiredWakeups.of({
      subscribe: PubSub.subscribe(hub),
      local: (tenant, pbx) => PubSub.publish(hub, { kind: "changed", tenant, pbx }).pipe(Effect.asVoid)
    })
  }))
}

/** Rows read per PBX at a time. */
const pageSize = 500
/** Without any wake-up, pending rows are looked at this often (a safety net for lost notifications and refused writes). */
const safetyInterval = "15 seconds"

/** What the sender works with: the tenant, the store, the real writer, the PBX sockets here and this runner's id. */
export interface Sides {
  readonly tenant: TenantId
  readonly store: StateStore["Service"]
  readonly real: PresenceWriter["Service"]
  readonly connections: PbxConnections["Service"]
  /** The lease holder's name in the store (the runner id). */
  readonly runner: string
}

/** A PBX's lease as held here: its epoch and the connection it was taken for; `lost` once another runner took it. */
type Held = { readonly epoch: number; readonly connection: number } | "lost"

/**
 * The leases of the PBXs logged in here. `loggedIn` at each login; `of` the one to send with, taken (the next epoch) on
 * the first look after the login; `lost` when the store refused an epoch: no more sends to that PBX until it logs in here
 * again, and its socket is closed (the PBX holds another socket, on another runner, that took the lease).
 */
const makeLeases = (sides: Sides) => {
  const { connections, runner, store, tenant } = sides
  const held = new Map<string, Held>()
  const take = Effect.fnUntraced(function*(pbx: string, connection: number) {
    const lease = yield* store.desired.lease(tenant, pbx, runner)
    held.set(pbx, { epoch: lease.epoch, connection })
    yield* Effect.logInfo(`cluster: PBX ${pbx} of ${tenant}: its socket's lease taken here (epoch ${lease.epoch})`)
    return held.get(pbx)!
  })
  const of = Effect.fnUntraced(function*(pbx: string) {
    const current = held.get(pbx)
    if (current !== undefined) return current
    const connection = yield* connections.get(pbx)
    return connection._tag === "Some" ? yield* take(pbx, connection.value.id) : "lost" as const
  })
  const lost = Effect.fnUntraced(function*(pbx: string, lease: Exclude<Held, "lost">, error: StateStoreError) {
    if (held.get(pbx) !== lease) return // a newer login here took a newer lease meanwhile
    held.set(pbx, "lost")
    yield* Effect.logWarning(`cluster: PBX ${pbx} of ${tenant}: ${error.message}: closing its socket here`)
    const connection = yield* connections.get(pbx)
    if (connection._tag === "Some" && connection.value.id === lease.connection) {
      yield* connection.value.close("another runner holds this PBX's socket lease now (the PBX logged in there)")
    }
  })
  /** A login here on `connection`: its lease is taken on the next look, unless it was taken for that connection already. */
  const loggedIn = (pbx: string, connection: number) => {
    const current = held.get(pbx)
    if (current === "lost" || current?.connection !== connection) held.delete(pbx)
  }
  return { of, lost, loggedIn }
}

/**
 * What the PBXs connected here have not confirmed, sent through the real writer and confirmed. `wake` asks for a look
 * (coalesced); it looks on every NOTIFY for the tenant, every PBX login and every `safetyInterval` by itself.
 */
export const makeSender = Effect.fnUntraced(function*(sides: Sides, wakeups: DesiredWakeups["Service"]) {
  const { connections, real, store, tenant } = sides
  const leases = makeLeases(sides)
  const sendWake = yield* Queue.sliding<void>(1)
  // When a NOTIFY for the tenant first woke the sender since its last look began, and that look's (the `wake_to_read` stage).
  let notifiedAt: number | undefined
  let lookNotifiedAt: number | undefined
  const sendLeased = Effect.fnUntraced(function*(pbx: string, lease: Exclude<Held, "lost">) {
    while (true) {
      const rows = yield* store.desired.pending(tenant, pbx, pageSize, lease.epoch)
      if (rows.length === 0) return
      if (lookNotifiedAt !== undefined) yield* recordStageSince("wake_to_read", lookNotifiedAt)
      lookNotifiedAt = undefined
      for (const row of rows) if (row.waited !== undefined) yield* recordStage("row_to_read", row.waited)
      yield* timedStage("pbx_send", Effect.andThen(
        real.writeAll(rows.map((row) => ({ guid: row.guid, command: row.command }))),
        real.flush.pipe(Effect.timeout("30 seconds"), Effect.ignore)
      ))
      const written = yield* real.current
      const confirmed = rows.filter((row) => {
        const last = written.get(row.guid)
        return last !== undefined && commandEquals(last.command, row.command)
      })
      if (confirmed.length > 0) {
        yield* timedStage("confirm", store.desired.confirm(tenant, confirmed.map((row) => ({ guid: row.guid, version: row.version })), { pbx, epoch: lease.epoch }))
      }
      yield* Effect.logDebug(`cluster: PBX ${pbx} of ${tenant}: ${rows.length} desired presences sent, ${confirmed.length} confirmed`)
      // What the PBX did not confirm waits for its next login, a retry or the safety interval.
      if (confirmed.length < rows.length || rows.length < pageSize) return
    }
  })
  const sendPbx = Effect.fnUntraced(function*(pbx: string) {
    const lease = yield* leases.of(pbx)
    if (lease === "lost") return
    yield* sendLeased(pbx, lease).pipe(Effect.catchIf((error) => error.reason === "Fenced", (error) => leases.lost(pbx, lease, error)))
  })
  const sendAll = Effect.gen(function*() {
    const states = yield* SubscriptionRef.get(connections.states)
    for (const [pbx, state] of states) if (state.loggedIn) yield* sendPbx(pbx)
  })
  yield* Effect.gen(function*() {
    while (true) {
      yield* Queue.take(sendWake)
      lookNotifiedAt = notifiedAt
      notifiedAt = undefined
      yield* sendAll.pipe(Effect.catch((error) => Effect.logWarning(`cluster: sending desired presences failed: ${clip(error.message, 300)}`)))
    }
  }).pipe(Effect.forkScoped)

  const wake = Queue.offer(sendWake, undefined).pipe(Effect.asVoid)
  const notifications = yield* wakeups.subscribe
  yield* Effect.gen(function*() {
    while (true) {
      const wakeup = yield* PubSub.take(notifications)
      if (wakeup.kind === "changed" && wakeup.tenant === tenant) notifiedAt ??= yield* Clock.currentTimeMillis
      if (wakeup.kind === "resync" || wakeup.tenant === tenant) yield* wake
    }
  }).pipe(Effect.forkScoped)
  const events = yield* connections.subscribe
  yield* Effect.gen(function*() {
    while (true) {
      const event = yield* PubSub.take(events)
      if (event._tag !== "Up") continue
      // A login here: the look it wakes takes the PBX's lease for this socket (takes happen in that one fiber only).
      leases.loggedIn(event.connection.pbx, event.connection.id)
      yield* wake
    }
  }).pipe(Effect.forkScoped)
  yield* wake.pipe(Effect.delay(safetyInterval), Effect.forever, Effect.forkScoped)
  yield* wake
  return { wake, sendAll }
})
