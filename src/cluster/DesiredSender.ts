/**
 * The socket holder's half of the desired commands (docs/scaling.md, "PBX writes" and "One writer per PBX"): what the
 * PBXs logged in here have not confirmed, sent through the real PresenceWriter and confirmed in the store.
 * The leases, and what is handed to the writer on each: DesiredHandover.ts.
 */
import { Clock, Context, Effect, Layer, PubSub, Queue, Schedule, type Scope, Stream, SubscriptionRef } from "effect"
import { clip } from "../domain/LogText.ts"
import { type DesiredWakeup, StateStore, type TenantId, type VersionedCommand } from "../state/StateStore.ts"
import { describeCause } from "../state/StateStoreError.ts"
import { userFence } from "./DesiredFence.ts"
import { followConfirmations, type Held, makeHandover, makeLeases, type Sides } from "./DesiredHandover.ts"
import { recordStage, recordStageSince } from "./StageTimings.ts"
import { makeTenantHubs } from "./TenantHubs.ts"

/**
 * The store's wake-ups for every process and those of the puts on the PBXs whose socket `runners` hold (one LISTEN each
 * with PostgreSQL), shared by the runner's tenants; `subscribe` gives the wake-ups of one tenant (and every resync), so a
 * NOTIFY wakes only the senders of the tenant it names (TenantHubs.ts). `local` wakes this runner's senders of a PBX at
 * once, without waiting for the put's NOTIFY to come back from the database (an owner whose PBX's socket is here).
 */
export class DesiredWakeups extends Context.Service<DesiredWakeups, {
  readonly subscribe: (tenant: TenantId) => Effect.Effect<PubSub.Subscription<DesiredWakeup>, never, Scope.Scope>
  /** With `put`: the rows of an own put for `pbx`, each with the PBX's lease as the put saw it. */
  readonly local: (tenant: TenantId, pbx: string, put?: ReadonlyArray<VersionedCommand>) => Effect.Effect<void>
}>()("teams-presence-connector/cluster/DesiredWakeups") {
  static readonly layer = (runners: ReadonlyArray<string>) => Layer.effect(DesiredWakeups, Effect.gen(function*() {
    const store = yield* StateStore
    // Per tenant (the newest kept): a wake-up only marks what the next look reads; hundreds waiting are a long backlog.
    const hubs = makeTenantHubs<DesiredWakeup>(256)
    yield* Effect.forEach([store.desired.wakeups, ...runners.map(store.desired.heldWakeups)], (wakeups) => wakeups.pipe(
      Stream.runForEach((wakeup) =>
        wakeup.kind === "resync" ? hubs.publishAll(wakeup) : Effect.andThen(
          wakeup.at !== undefined && wakeup.receivedAt !== undefined
            ? Effect.andThen(recordStage("notify", wakeup.receivedAt - wakeup.at), recordStageSince("notify_hop", wakeup.receivedAt))
            : Effect.void,
          hubs.publish(wakeup.tenant, wakeup)
        )
      ),
      Effect.tapError((error) => Effect.logWarning(`cluster: PBX wake-ups failed (${describeCause(error)}); listening again`)),
      Effect.retry(Schedule.spaced("2 seconds")),
      Effect.forkScoped
    ), { discard: true })
    return DesiredWakeups.of({
      subscribe: hubs.subscribe,
      local: (tenant, pbx, put) => hubs.publish(tenant, { kind: "changed", tenant, pbx, ...(put === undefined ? {} : { put }) })
    })
  }))
}

/** Without any wake-up, pending rows are looked at this often (a safety net for lost notifications and refused writes). */
const safetyInterval = "15 seconds"

export type { Sides } from "./DesiredHandover.ts"

/**
 * How long a sender waits for an own put's rows (DesiredWakeups.local) after the put's NOTIFY came first, before it
 * reads instead: the owner's put loop ended between its commit and its answer (the tenant stopping here).
 */
const putGrace = "1 second"

/**
 * The version of an own put (this runner's owner put it, and it saw this runner's lease with the epoch held here) that a
 * NOTIFY without the rows names (they did not fit in it): its rows come from the owner directly. Undefined: any other.
 */
const ownPut = (runner: string, lease: Held | undefined, wakeup: Extract<DesiredWakeup, { kind: "changed" }>) =>
  wakeup.by?.owner === runner && wakeup.by.holder === runner && lease !== undefined && lease !== "lost" &&
    lease.epoch === wakeup.by.lease ? wakeup.version : undefined

/** What wakes a sender: a NOTIFY for its tenant (at the PBX it names), a re-LISTEN (every PBX) and a login here (that PBX). */
const followWakeups = Effect.fnUntraced(function*(
  sides: Sides,
  wakeups: DesiredWakeups["Service"],
  leases: ReturnType<typeof makeLeases>,
  wake: {
    readonly all: Effect.Effect<void>
    readonly pbxs: (pbxs: Iterable<string>) => Effect.Effect<void>
    /** A NOTIFY for the tenant's `pbx`, received at `at` (the `wake_to_read` stage), naming the put's highest version. */
    readonly notified: (pbx: string, at: number, version: number | undefined) => Effect.Effect<void>
    /** An own put's rows for `pbx` (this runner owns the tenant). */
    readonly put: (pbx: string, rows: ReadonlyArray<VersionedCommand>) => Effect.Effect<void>
  }
) {
  const notifications = yield* wakeups.subscribe(sides.tenant)
  yield* Effect.gen(function*() {
    while (true) {
      const wakeup = yield* PubSub.take(notifications)
      if (wakeup.kind === "resync") yield* wake.all
      // A put's rows: an own put's from the owner here, or any put's carried by its NOTIFY (the PBX was leased).
      else if (wakeup.put !== undefined) yield* wake.put(wakeup.pbx, wakeup.put)
      else {
        const notified = wake.notified(wakeup.pbx, yield* Clock.currentTimeMillis, wakeup.version)
        const expected = ownPut(sides.runner, leases.peek(wakeup.pbx), wakeup)
        if (expected === undefined) yield* notified
        else {
          // The put's NOTIFY came before its answer reached the owner here: its rows follow (`put`); read only if not.
          const arrived = Effect.sync(() => { const lease = leases.peek(wakeup.pbx); return lease !== undefined && lease !== "lost" && lease.readBound >= expected })
          yield* Effect.sleep(putGrace).pipe(Effect.andThen(arrived), Effect.flatMap((done) => (done ? Effect.void : notified)), Effect.forkScoped)
        }
      }
    }
  }).pipe(Effect.forkScoped)
  const events = yield* sides.connections.subscribe
  yield* Effect.gen(function*() {
    while (true) {
      const event = yield* PubSub.take(events)
      if (event._tag !== "Up") continue
      // A login here: the look it wakes takes the PBX's lease for this socket (takes happen in that one fiber only).
      leases.loggedIn(event.connection.pbx, event.connection.id)
      yield* wake.pbxs([event.connection.pbx])
    }
  }).pipe(Effect.forkScoped)
})

/**
 * Own puts' rows handed over without a read (DesiredHandover.ts `handPut`); a PBX whose rows cannot be is added to
 * `only`, to be read in any case.
 */
const handPuts = Effect.fnUntraced(function*(
  leases: ReturnType<typeof makeLeases>,
  handover: ReturnType<typeof makeHandover>,
  put: ReadonlyMap<string, ReadonlyArray<VersionedCommand>>,
  only: Map<string, number | undefined> | undefined
) {
  for (const [pbx, rows] of put) {
    const lease = leases.peek(pbx)
    let handed = false
    if (lease !== undefined && lease !== "lost") {
      yield* leases.guarded(pbx, lease, Effect.map(handover.handPut(pbx, lease, rows), (done) => void (handed = done)))
    }
    if (!handed) only?.set(pbx, undefined)
  }
})

/**
 * What the PBXs connected here have not confirmed, sent through the real writer and confirmed. `wake` asks for a look at
 * every PBX logged in here, `wakeFor` at some of them (coalesced); it looks on every NOTIFY for the tenant (at the PBX
 * it names), every PBX login (at that PBX) and every `safetyInterval` by itself (at all of them).
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
  // What the next look reads: every PBX logged in here, or only those named since the last look began — a wake-up for
  // one PBX never waits behind a read of another PBX's rows (one round trip to the database each) — each with the
  // highest version its NOTIFYs named (undefined: read in any case), which a look that read that far already skips.
  let dueAll = true
  const due = new Map<string, number | undefined>()
  // Own puts' rows per PBX since the last look began, in put order: handed over without a read where the lease allows.
  const puts = new Map<string, Array<VersionedCommand>>()
  // The look's first NOTIFY time, taken once (the `wake_to_read` stage).
  const handover = makeHandover(sides, { lookWoken: () => [lookNotifiedAt, lookNotifiedAt = undefined][0] })
  const sendPbx = Effect.fnUntraced(function*(pbx: string, full: boolean, notified?: number) {
    const lease = yield* leases.of(pbx)
    if (lease === "lost") return
    // The put's NOTIFY coming back after its owner woke this sender at once, and the look then read that far.
    if (!full && notified !== undefined && lease.readBound >= notified) return
    // The full look also confirms what a failed confirmation left handed (the writer will not report it again).
    const look = handover.look(pbx, lease, full)
    yield* leases.guarded(pbx, lease, full ? Effect.andThen(handover.confirmWritten(pbx, lease, [...lease.handed.keys()]), look) : look)
  })
  /** Looks at the PBXs logged in here: all of them, or those of `only` (with the version each was notified for). */
  const lookAt = (full: boolean, only?: ReadonlyMap<string, number | undefined>) => Effect.gen(function*() {
    const states = yield* SubscriptionRef.get(connections.states)
    for (const [pbx, state] of states) {
      if (state.loggedIn && (only === undefined || only.has(pbx))) yield* sendPbx(pbx, full, only?.get(pbx))
    }
  })
  const sendAll = lookAt(false)
  /** Confirms in the store what the writer confirmed of what was handed (e.g. after its flush, before a stop). */
  const settle = Effect.suspend(() =>
    Effect.forEach(leases.current(), ([pbx, lease]) => leases.guarded(pbx, lease, handover.confirmWritten(pbx, lease, [...lease.handed.keys()])), { discard: true })
  )
  yield* followConfirmations(real, leases, handover)
  // The writer's own re-sends (retries, a login, a user-table change) go out only while the store keys the user here.
  if (real.fence !== undefined) yield* real.fence(userFence(sides, leases))
  yield* Effect.gen(function*() {
    while (true) {
      yield* Queue.take(sendWake)
      lookNotifiedAt = notifiedAt
      notifiedAt = undefined
      const full = fullLook
      const only = full || dueAll ? undefined : new Map(due)
      const put = new Map(puts)
      fullLook = false
      dueAll = false
      due.clear()
      puts.clear()
      yield* handPuts(leases, handover, put, only).pipe(
        Effect.andThen(lookAt(full, only)),
        Effect.catch((error) => Effect.logWarning(`cluster: sending desired presences failed: ${clip(error.message, 300)}`))
      )
    }
  }).pipe(Effect.forkScoped)

  const wakeSignal = Queue.offer(sendWake, undefined).pipe(Effect.asVoid)
  const wake = Effect.andThen(Effect.sync(() => void (dueAll = true)), wakeSignal)
  const wakeFor = (pbxs: Iterable<string>) =>
    Effect.andThen(Effect.sync(() => { for (const pbx of pbxs) due.set(pbx, undefined) }), wakeSignal)
  const notified = (pbx: string, at: number, version: number | undefined) =>
    Effect.andThen(Effect.sync(() => {
      notifiedAt ??= at
      const before = due.get(pbx)
      // Unconditional stays unconditional; otherwise the highest version named.
      due.set(pbx, (due.has(pbx) && before === undefined) || version === undefined ? undefined : Math.max(before ?? 0, version))
    }), wakeSignal)
  const put = (pbx: string, rows: ReadonlyArray<VersionedCommand>) =>
    Effect.andThen(Effect.sync(() => { puts.set(pbx, [...(puts.get(pbx) ?? []), ...rows]) }), wakeSignal)
  yield* followWakeups(sides, wakeups, leases, { all: wake, pbxs: wakeFor, notified, put })
  const fullWake = Effect.andThen(Effect.sync(() => void (fullLook = true)), wakeSignal)
  yield* fullWake.pipe(Effect.delay(safetyInterval), Effect.forever, Effect.forkScoped)
  yield* wake
  return { wake, wakeFor, sendAll, settle }
})
