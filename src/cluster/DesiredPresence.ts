/**
 * The PBX write path of a cluster (docs/scaling.md): presence is state, not events. The tenant's owner does not write
 * SetPresence itself; it puts the desired command per PBX user into the store (latest wins, a new version each
 * change, refused once its owner epoch is stale), and whoever holds the PBX's socket sends what is newer than what
 * the PBX confirmed, then records the confirmation. A NOTIFY (or the owner's own put) wakes the sender; a PBX that
 * logs in again — here or on another runner — gets every state it has not confirmed.
 *
 * `desiredPresenceWriter` replaces the flow's PresenceWriter with the store and runs the sender over the real writer
 * (which keeps its coalescing, one request in flight per user, routing to the user's PBX and retries).
 */
import { Context, Deferred, Effect, Layer, PubSub, Queue, Schedule, type Scope, Stream, SubscriptionRef } from "effect"
import { clip } from "../domain/LogText.ts"
import { commandEquals } from "../domain/PbxPresence.ts"
import { PbxDirectory } from "../pbx/directory/PbxDirectory.ts"
import { PbxSettings } from "../pbx/PbxSettings.ts"
import { PresenceWriter } from "../pbx/writer/PresenceWriter.ts"
import type { DesiredPresence, PresenceWrite } from "../pbx/writer/WriterState.ts"
import { PbxConnections } from "../pbx/socket/PbxConnections.ts"
import { type DesiredCommand, type DesiredWakeup, StateStore, StateStoreError, type TenantId, type TenantOwner } from "../state/StateStore.ts"
import { describeCause } from "../state/StateStoreError.ts"

/** One LISTEN per runner, shared by its tenants. */
export class DesiredWakeups extends Context.Service<DesiredWakeups, {
  readonly subscribe: Effect.Effect<PubSub.Subscription<DesiredWakeup>, never, Scope.Scope>
}>()("teams-presence-connector/cluster/DesiredWakeups") {
  static readonly layer = Layer.effect(DesiredWakeups, Effect.gen(function*() {
    const store = yield* StateStore
    const hub = yield* PubSub.sliding<DesiredWakeup>(4096)
    yield* store.desired.wakeups.pipe(
      Stream.runForEach((wakeup) => PubSub.publish(hub, wakeup)),
      Effect.tapError((error) => Effect.logWarning(`cluster: PBX wake-ups failed (${describeCause(error)}); listening again`)),
      Effect.retry(Schedule.spaced("2 seconds")),
      Effect.forkScoped
    )
    return DesiredWakeups.of({ subscribe: PubSub.subscribe(hub) })
  }))
}

/** Rows read per PBX at a time. */
const pageSize = 500
/** Without any wake-up, pending rows are looked at this often (a safety net for lost notifications and refused writes). */
const safetyInterval = "15 seconds"
const again = Schedule.min([Schedule.exponential("200 millis", 2), Schedule.spaced("10 seconds")])

/** What both sides work with: the tenant, the store, the real writer and the PBX sockets of the tenant's connector. */
interface Sides {
  readonly tenant: TenantId
  readonly store: StateStore["Service"]
  readonly real: PresenceWriter["Service"]
  readonly connections: PbxConnections["Service"]
}

/**
 * The socket holder's side: what the PBXs connected here have not confirmed, sent through the real writer and
 * confirmed. `wake` asks for a look (coalesced); it looks on every NOTIFY for the tenant, every PBX login and every
 * `safetyInterval` by itself.
 */
const makeSender = Effect.fnUntraced(function*(sides: Sides, wakeups: DesiredWakeups["Service"]) {
  const { connections, real, store, tenant } = sides
  const sendWake = yield* Queue.sliding<void>(1)
  const sendPbx = Effect.fnUntraced(function*(pbx: string) {
    while (true) {
      const rows = yield* store.desired.pending(tenant, pbx, pageSize)
      if (rows.length === 0) return
      yield* real.writeAll(rows.map((row) => ({ guid: row.guid, command: row.command })))
      yield* real.flush.pipe(Effect.timeout("30 seconds"), Effect.ignore)
      const written = yield* real.current
      const confirmed = rows.filter((row) => {
        const last = written.get(row.guid)
        return last !== undefined && commandEquals(last.command, row.command)
      })
      if (confirmed.length > 0) yield* store.desired.confirm(tenant, confirmed.map((row) => ({ guid: row.guid, version: row.version })))
      yield* Effect.logDebug(`cluster: PBX ${pbx} of ${tenant}: ${rows.length} desired presences sent, ${confirmed.length} confirmed`)
      // What the PBX did not confirm waits for its next login, a retry or the safety interval.
      if (confirmed.length < rows.length || rows.length < pageSize) return
    }
  })
  const sendAll = Effect.gen(function*() {
    const states = yield* SubscriptionRef.get(connections.states)
    for (const [pbx, state] of states) if (state.loggedIn) yield* sendPbx(pbx)
  })
  yield* Effect.gen(function*() {
    while (true) {
      yield* Queue.take(sendWake)
      yield* sendAll.pipe(Effect.catch((error) => Effect.logWarning(`cluster: sending desired presences failed: ${clip(error.message, 300)}`)))
    }
  }).pipe(Effect.forkScoped)

  const wake = Queue.offer(sendWake, undefined).pipe(Effect.asVoid)
  const notifications = yield* wakeups.subscribe
  yield* Effect.gen(function*() {
    while (true) {
      const wakeup = yield* PubSub.take(notifications)
      if (wakeup.kind === "resync" || wakeup.tenant === tenant) yield* wake
    }
  }).pipe(Effect.forkScoped)
  const events = yield* connections.subscribe
  yield* Effect.gen(function*() {
    while (true) {
      const event = yield* PubSub.take(events)
      if (event._tag === "Up") yield* wake
    }
  }).pipe(Effect.forkScoped)
  yield* wake.pipe(Effect.delay(safetyInterval), Effect.forever, Effect.forkScoped)
  yield* wake
  return { wake, sendAll }
})

/** What the owner's put loop works on. */
interface Puts {
  readonly tenant: TenantId
  readonly store: StateStore["Service"]
  readonly owner: TenantOwner
  readonly fenced: Deferred.Deferred<StateStoreError>
  readonly sent: Effect.Effect<void>
  readonly outbox: Map<string, DesiredCommand>
  readonly putWake: Queue.Queue<void>
  readonly idle: SubscriptionRef.SubscriptionRef<boolean>
}

/** The owner's put loop: the outbox in batches, retried until stored or fenced (then `fenced` completes and it ends). */
const runPuts = ({ fenced, idle, outbox, owner, putWake, sent, store, tenant }: Puts) => {
  const putBatch = (batch: ReadonlyArray<DesiredCommand>) =>
    store.desired.put(tenant, owner.epoch, batch).pipe(
      // A database that stopped answering (a partition) is a failure to retry, not a wait without end.
      Effect.timeoutOrElse({
        duration: "5 seconds",
        orElse: () => Effect.fail(new StateStoreError({ reason: "Unavailable", tenant, message: "the state database did not answer within 5 s" }))
      }),
      Effect.tapError((error) =>
        error.reason === "Fenced" ? Effect.void : Effect.logWarning(`cluster: desired presences not stored yet: ${clip(error.message, 300)}`)
      ),
      Effect.retry({ schedule: again, while: (error) => error.reason !== "Fenced" }),
      Effect.result
    )

  return Effect.gen(function*() {
    while (true) {
      yield* Queue.take(putWake)
      while (outbox.size > 0) {
        const batch = [...outbox.values()]
        outbox.clear()
        const put = yield* putBatch(batch)
        if (put._tag === "Failure") {
          yield* Effect.logError(`cluster: ${put.failure.message}`)
          yield* Deferred.succeed(fenced, put.failure)
          return
        }
        yield* sent
      }
      yield* SubscriptionRef.set(idle, true)
    }
  }).pipe(Effect.forkScoped)
}

/**
 * The owner's side: the latest command per user, put into the store with the owner's epoch (one batch at a time,
 * retried; `fenced` completes when the store refuses the epoch), then `sent` to wake the sender.
 */
const makeOwnerSide = Effect.fnUntraced(function*(
  sides: Sides,
  connected: Effect.Effect<ReadonlySet<string>>,
  owner: TenantOwner,
  fenced: Deferred.Deferred<StateStoreError>,
  sent: Effect.Effect<void>
) {
  const { store, tenant } = sides
  const directory = yield* PbxDirectory
  const settings = yield* PbxSettings
  const outbox = new Map<string, DesiredCommand>()
  // What this owner wants each PBX user to show (the planner clears users who leave the plan from it).
  const wanted = new Map<string, DesiredPresence>()
  const putWake = yield* Queue.sliding<void>(1)
  const idle = yield* SubscriptionRef.make(true)

  /**
   * The PBX a user's command is for: their `loc` PBX when it has an App connection (on any runner: `connected`), else
   * the master (as the writer routes).
   */
  const pbxOf = Effect.fnUntraced(function*(guid: string) {
    const user = yield* directory.get(guid)
    const loc = user._tag === "Some" ? user.value.loc : ""
    return loc !== "" && (yield* connected).has(loc) ? loc : settings.masterPbx
  })

  // The PBX each user's latest command was keyed to.
  const keyed = new Map<string, string>()
  const writeAll = Effect.fnUntraced(function*(writes: ReadonlyArray<PresenceWrite>) {
    if (writes.length === 0) return
    for (const write of writes) {
      const pbx = yield* pbxOf(write.guid)
      keyed.set(write.guid, pbx)
      outbox.set(write.guid, { pbx, guid: write.guid, command: write.command })
      wanted.set(write.guid, {
        command: write.command,
        receivedAt: write.meta?.receivedAt,
        decryptedAt: write.meta?.decryptedAt,
        span: write.meta?.span,
        failures: 0
      })
    }
    yield* SubscriptionRef.set(idle, false)
    yield* Queue.offer(putWake, undefined)
  })

  yield* runPuts({ tenant, store, owner, fenced, sent, outbox, putWake, idle })
  /** Users whose command is keyed to another PBX than `pbxOf` says now: put again, keyed to that PBX. */
  const rekey = Effect.gen(function*() {
    const moved: Array<PresenceWrite> = []
    for (const [guid, pbx] of keyed) {
      const held = wanted.get(guid)
      if (held !== undefined && (yield* pbxOf(guid)) !== pbx) moved.push({ guid, command: held.command })
    }
    if (moved.length > 0) yield* writeAll(moved)
    return moved.length
  })
  return { writeAll, wanted, idle, rekey }
})

/**
 * With sockets on any runner: when the set of logged-in PBXs changes (a slave logs in on some runner, or is gone),
 * the commands of the users it concerns are keyed again, so that a user's command goes to their `loc` PBX's socket
 * holder (as the one-process writer re-routes on a PBX's login, Resend.ts).
 */
const followConnected = (connected: Effect.Effect<ReadonlySet<string>>, rekey: Effect.Effect<number>) =>
  Effect.gen(function*() {
    let last = ""
    while (true) {
      const now = [...(yield* connected)].sort().join("\u0000")
      if (now !== last) {
        last = now
        const moved = yield* rekey
        if (moved > 0) yield* Effect.logInfo(`cluster: ${moved} users' PBX commands keyed again to the PBXs now connected`)
      }
      yield* Effect.sleep("1 second")
    }
  }).pipe(Effect.forkScoped)

/**
 * The flow's PresenceWriter for tenant `tenant` owned with `owner`'s epoch. `fenced` completes when the store refuses
 * the epoch: another runner owns the tenant now, and the caller stops the tenant's work.
 */
export const desiredPresenceWriter = (
  tenant: TenantId,
  owner: TenantOwner,
  fenced: Deferred.Deferred<StateStoreError>,
  /**
   * Where the tenant's PBX sockets are: the PBXs logged in on any runner. Without it, the connector's own sockets, and
   * the connector sends what they have not confirmed itself (the sender runs in it).
   */
  cluster?: { readonly connected: Effect.Effect<ReadonlySet<string>> }
) =>
  Layer.effect(PresenceWriter, Effect.gen(function*() {
    const sides: Sides = { tenant, store: yield* StateStore, real: yield* PresenceWriter, connections: yield* PbxConnections }
    const sender = cluster === undefined ? yield* makeSender(sides, yield* DesiredWakeups) : undefined
    const ownConnections = SubscriptionRef.get(sides.connections.states).pipe(
      Effect.map((states): ReadonlySet<string> => new Set(states.keys()))
    )
    const ownerSide = yield* makeOwnerSide(sides, cluster?.connected ?? ownConnections, owner, fenced, sender?.wake ?? Effect.void)
    if (cluster !== undefined) yield* followConnected(cluster.connected, ownerSide.rekey)
    return PresenceWriter.of({
      writeAll: ownerSide.writeAll,
      write: (guid, command, meta) => ownerSide.writeAll([{ guid, command, meta }]),
      // Bounded: a stop must not wait for a database that does not answer (what is not stored, the next owner re-reads).
      flush: Stream.runHead(Stream.filter(SubscriptionRef.changes(ownerSide.idle), (value) => value)).pipe(
        Effect.andThen(sender === undefined ? Effect.void : sender.sendAll.pipe(Effect.ignore)),
        Effect.timeout("3 seconds"),
        Effect.ignore,
        Effect.andThen(sides.real.flush)
      ),
      current: sides.real.current,
      desired: Effect.succeed<ReadonlyMap<string, DesiredPresence>>(ownerSide.wanted),
      confirmations: sides.real.confirmations
    })
  }))

/**
 * The socket holder's half on its own (a runner's PBX side, src/cluster/PbxSide.ts): what the PBXs connected to these
 * PbxConnections have not confirmed, sent through this PresenceWriter (the real one) and confirmed in the store.
 */
export const desiredPresenceSender = (tenant: TenantId) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const sides: Sides = { tenant, store: yield* StateStore, real: yield* PresenceWriter, connections: yield* PbxConnections }
    yield* makeSender(sides, yield* DesiredWakeups)
  }))
