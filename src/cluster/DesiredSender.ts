/**
 * The socket holder's half of the desired commands (docs/scaling.md, "PBX writes" and "One writer per PBX"): what the
 * PBXs logged in here have not confirmed, sent through the real PresenceWriter and confirmed in the store.
 * The leases, and what is handed to the writer on each: DesiredHandover.ts.
 */
import { Clock, Context, Effect, Layer, PubSub, Queue, Schedule, type Scope, Stream, SubscriptionRef } from "effect"
import { clip } from "../domain/LogText.ts"
import { type DesiredWakeup, StateStore, type TenantId } from "../state/StateStore.ts"
import { describeCause } from "../state/StateStoreError.ts"
import { followConfirmations, makeHandover, makeLeases, type Sides } from "./DesiredHandover.ts"
import { recordStage, recordStageSince } from "./StageTimings.ts"

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

/** Without any wake-up, pending rows are looked at this often (a safety net for lost notifications and refused writes). */
const safetyInterval = "15 seconds"

export type { Sides } from "./DesiredHandover.ts"

/**
 * What the PBXs connected here have not confirmed, sent through the real writer and confirmed. `wake` asks for a look
 * (coalesced); it looks on every NOTIFY for the tenant, every PBX login and every `safetyInterval` by itself.
 */
export const makeSender = Effect.fnUntraced(function*(sides: Sides, wakeups: DesiredWakeups["Service"]) {
  const { connections, real, tenant } = sides
  const leases = makeLeases(sides)
  const sendWake = yield* Queue.sliding<void>(1)
  // When a NOTIFY for the tenant first woke the sender since its last look began, and that look's (the `wake_to_read` stage).
  let notifiedAt: number | undefined
  let lookNotifiedAt: number | undefined
  // Whether the next look reads every pending row (the safety interval), not only those above each lease's read bound.
  let fullLook = true
  const lookWoken = () => {
    const at = lookNotifiedAt
    lookNotifiedAt = undefined
    return at
  }
  const handover = makeHandover(sides, { lookWoken })
  const sendPbx = Effect.fnUntraced(function*(pbx: string, full: boolean) {
    const lease = yield* leases.of(pbx)
    if (lease === "lost") return
    // The full look also confirms what a failed confirmation left handed (the writer will not report it again).
    const look = handover.look(pbx, lease, full)
    yield* leases.guarded(pbx, lease, full ? Effect.andThen(handover.confirmWritten(pbx, lease, [...lease.handed.keys()]), look) : look)
  })
  const lookAll = (full: boolean) => Effect.gen(function*() {
    const states = yield* SubscriptionRef.get(connections.states)
    for (const [pbx, state] of states) if (state.loggedIn) yield* sendPbx(pbx, full)
  })
  const sendAll = lookAll(false)
  /** Confirms in the store what the writer confirmed of what was handed (e.g. after its flush, before a stop). */
  const settle = Effect.suspend(() =>
    Effect.forEach(leases.current(), ([pbx, lease]) => leases.guarded(pbx, lease, handover.confirmWritten(pbx, lease, [...lease.handed.keys()])), { discard: true })
  )
  yield* followConfirmations(real, leases, handover)
  yield* Effect.gen(function*() {
    while (true) {
      yield* Queue.take(sendWake)
      lookNotifiedAt = notifiedAt
      notifiedAt = undefined
      const full = fullLook
      fullLook = false
      yield* lookAll(full).pipe(Effect.catch((error) => Effect.logWarning(`cluster: sending desired presences failed: ${clip(error.message, 300)}`)))
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
  const fullWake = Effect.andThen(Effect.sync(() => void (fullLook = true)), wake)
  yield* fullWake.pipe(Effect.delay(safetyInterval), Effect.forever, Effect.forkScoped)
  yield* wake
  return { wake, sendAll, settle }
})
