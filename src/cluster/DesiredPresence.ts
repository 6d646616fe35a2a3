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
import { Clock, Deferred, Effect, Layer, Queue, Schedule, Stream, SubscriptionRef } from "effect"
import { clip } from "../domain/LogText.ts"
import { PbxDirectory } from "../pbx/directory/PbxDirectory.ts"
import { PbxSettings } from "../pbx/PbxSettings.ts"
import { PresenceWriter } from "../pbx/writer/PresenceWriter.ts"
import type { DesiredPresence, PresenceWrite } from "../pbx/writer/WriterState.ts"
import { PbxConnections } from "../pbx/socket/PbxConnections.ts"
import { type DesiredCommand, StateStore, StateStoreError, type TenantId, type TenantOwner, type VersionedCommand } from "../state/StateStore.ts"
import { DesiredWakeups, makeSender, type Sides } from "./DesiredSender.ts"
import { followMoves } from "./FollowMoves.ts"
import { recordStage, recordStageSince } from "./StageTimings.ts"

export { DesiredWakeups } from "./DesiredSender.ts"

const again = Schedule.min([Schedule.exponential("200 millis", 2), Schedule.spaced("10 seconds")])

/** What the owner's put loop works on. */
interface Puts {
  readonly tenant: TenantId
  readonly store: StateStore["Service"]
  readonly owner: TenantOwner
  readonly fenced: Deferred.Deferred<StateStoreError>
  /** After each stored batch, with the PBXs it was for and the rows it wrote (with their PBX's lease, PostgreSQL). */
  readonly sent: (pbxs: ReadonlySet<string>, written: ReadonlyArray<VersionedCommand>) => Effect.Effect<void>
  readonly outbox: Map<string, DesiredCommand>
  /** When the writer was given each user's command in the outbox (Clock milliseconds): the `put` stage. */
  readonly queuedAt: Map<string, number>
  readonly putWake: Queue.Queue<void>
  readonly idle: SubscriptionRef.SubscriptionRef<boolean>
}

/** The owner's put loop: the outbox in batches, retried until stored or fenced (then `fenced` completes and it ends). */
const runPuts = ({ fenced, idle, outbox, owner, putWake, queuedAt, sent, store, tenant }: Puts) => {
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
        for (const { guid } of batch) {
          const since = queuedAt.get(guid)
          queuedAt.delete(guid)
          if (since !== undefined) yield* recordStageSince("put", since)
        }
        yield* sent(new Set(batch.map((command) => command.pbx)), put.success)
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
  sent: Puts["sent"]
) {
  const { store, tenant } = sides
  const directory = yield* PbxDirectory
  const settings = yield* PbxSettings
  const outbox = new Map<string, DesiredCommand>()
  const queuedAt = new Map<string, number>()
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
    const now = yield* Clock.currentTimeMillis
    for (const write of writes) {
      queuedAt.set(write.guid, now)
      if (write.meta?.receivedAt !== undefined) yield* recordStage("flow", now - write.meta.receivedAt)
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

  yield* runPuts({ tenant, store, owner, fenced, sent, outbox, queuedAt, putWake, idle })
  /** Users (`guids`, or all) whose command is keyed to another PBX than `pbxOf` says now: put again in one batch. */
  const rekey = Effect.fnUntraced(function*(guids?: Iterable<string>) {
    const moved: Array<PresenceWrite> = []
    for (const guid of guids ?? keyed.keys()) {
      const pbx = keyed.get(guid)
      const held = wanted.get(guid)
      if (pbx !== undefined && held !== undefined && (yield* pbxOf(guid)) !== pbx) moved.push({ guid, command: held.command })
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
    const sides: Sides = { tenant, store: yield* StateStore, real: yield* PresenceWriter, connections: yield* PbxConnections, runner: owner.runner }
    const wakeups = yield* DesiredWakeups
    const sender = cluster === undefined ? yield* makeSender(sides, wakeups) : undefined
    // The senders of this runner are woken at once (the others by the put's NOTIFY), with the put's rows of each PBX
    // whose lease this runner held when the put was made: its sender hands them over without reading them.
    const sent = (pbxs: ReadonlySet<string>, written: ReadonlyArray<VersionedCommand>) =>
      sender !== undefined ? sender.wakeFor(pbxs) : Effect.forEach(pbxs, (pbx) => {
        const mine = written.filter((row) => row.pbx === pbx && row.lease?.runner === owner.runner)
        return wakeups.local(tenant, pbx, mine.length === 0 ? undefined : mine)
      }, { discard: true })
    const ownConnections = SubscriptionRef.get(sides.connections.states).pipe(
      Effect.map((states): ReadonlySet<string> => new Set(states.keys()))
    )
    const ownerSide = yield* makeOwnerSide(sides, cluster?.connected ?? ownConnections, owner, fenced, sent)
    if (cluster !== undefined) yield* followConnected(cluster.connected, ownerSide.rekey())
    yield* followMoves((yield* PbxDirectory).changes, ownerSide.rekey)
    return PresenceWriter.of({
      writeAll: ownerSide.writeAll,
      write: (guid, command, meta) => ownerSide.writeAll([{ guid, command, meta }]),
      // Bounded: a stop must not wait for a database that does not answer (what is not stored, the next owner re-reads).
      flush: Stream.runHead(Stream.filter(SubscriptionRef.changes(ownerSide.idle), (value) => value)).pipe(
        Effect.andThen(sender === undefined ? Effect.void : sender.sendAll.pipe(Effect.ignore)),
        Effect.timeout("3 seconds"),
        Effect.ignore,
        Effect.andThen(sides.real.flush),
        // What the writer confirmed meanwhile is confirmed in the store now, not only by the confirmations' fiber.
        Effect.andThen(sender === undefined ? Effect.void : sender.settle.pipe(Effect.ignore))
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
export const desiredPresenceSender = (tenant: TenantId, runner: string) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const sides: Sides = { tenant, store: yield* StateStore, real: yield* PresenceWriter, connections: yield* PbxConnections, runner }
    yield* makeSender(sides, yield* DesiredWakeups)
  }))
