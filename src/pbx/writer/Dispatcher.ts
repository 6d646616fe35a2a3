/**
 * The presence writer's one fiber: it takes users from the ready queue and sends their SetPresence on the connection
 * of their PBX (`routeOf`), and it handles the answers. At most one request per user and `maxConcurrent` overall are in
 * flight, so a slow or silent PBX never holds up the writes for the others (its requests time out). A request costs no
 * fiber of its own: the connection's callback queues its answer here. Refused writes are retried with backoff.
 */
import { Clock, type Context, Effect, Exit, FiberMap, Latch, Metric, Option, PubSub, type Scope, SubscriptionRef, type Tracer } from "effect"
import { clip } from "../../domain/LogText.ts"
import { decryptedToPbxSecondsOf, notificationToPbxSecondsOf, pbxWritesOf } from "../../domain/Metrics.ts"
import { commandLabel, type PbxPresenceCommand } from "../../domain/PbxPresence.ts"
import { childSpan, endSpan } from "../../observability/ChangeTrace.ts"
import type { PbxDirectory, PbxUser } from "../directory/PbxDirectory.ts"
import type { PbxSettings } from "../PbxSettings.ts"
import type { RequestOutcome } from "../socket/PbxConnection.ts"
import type { PbxConnections } from "../socket/PbxConnections.ts"
import { type DesiredPresence, type Fence, WriterState } from "./WriterState.ts"

/**
 * SetPresence requests in flight at once. The limit is there so that a PBX that stops answering holds a bounded
 * number of them. It must cover the PBX's round trip at burst rates: 32 in flight at a 20–50 ms round trip caps the
 * writes at 600–1,600/s, below what decryption delivers; 256 does not.
 */
export const maxConcurrent = 256

const maxAttempts = 6
const retryBaseMs = 200
const retryMaxMs = 30_000

/** The SetPresence fields for a command. "Clear" is activity "" and note "" on our contact (protocols.md §2.4). */
export const presenceFields = (command: PbxPresenceCommand): { readonly activity: string; readonly note: string } =>
  command._tag === "Clear" ? { activity: "", note: "" } : { activity: command.activity, note: command.note }

/** SetPresence (PbxApi, protocols.md §2.4) of one user under the connector's contact; `sip` is left out when empty. */
export const setPresenceRequest = (guid: string, sip: string, contact: string, command: PbxPresenceCommand) => ({
  api: "PbxApi",
  mt: "SetPresence",
  guid,
  ...(sip !== "" ? { sip } : {}),
  contact,
  ...presenceFields(command)
})

/**
 * Where a user's presence is written (protocols.md §2.4, §2.6): on the connection of the user's `loc` PBX when that PBX
 * has an App connection, else on the master's. Resend.ts follows what changes the answer.
 */
export const routeOf = Effect.fnUntraced(function*(
  services: {
    readonly settings: PbxSettings["Service"]
    readonly connections: PbxConnections["Service"]
    readonly directory: PbxDirectory["Service"]
  },
  guid: string
): Effect.fn.Return<{ readonly user: Option.Option<PbxUser>; readonly pbx: string }> {
  const user = yield* services.directory.get(guid)
  const states = yield* SubscriptionRef.get(services.connections.states)
  const loc = Option.getOrUndefined(Option.map(user, (value) => value.loc))
  return { user, pbx: loc !== undefined && loc !== "" && states.has(loc) ? loc : services.settings.masterPbx }
})

/** An answered or failed request, recorded by the connection's callback and handled by the dispatcher. */
interface Completion {
  readonly guid: string
  /** What was sent. */
  readonly entry: DesiredPresence
  readonly pbx: string
  readonly connectionId: number
  readonly outcome: RequestOutcome
  /** The SetPresence's span in the change's trace, when the change has one. */
  readonly span: Tracer.Span | undefined
}

/** The writer's state with what works on it: the services it sends through and the dispatcher's signals. */
export interface Dispatcher {
  readonly state: WriterState
  readonly settings: PbxSettings["Service"]
  readonly connections: PbxConnections["Service"]
  readonly directory: PbxDirectory["Service"]
  /** Opened when there is work: users queued or answers to handle. */
  readonly wake: Latch.Latch
  /** Open when nothing is queued, in flight or waiting for a retry (what `flush` waits for). */
  readonly idle: Latch.Latch
  readonly retries: FiberMap.FiberMap<string>
  readonly completed: Array<Completion>
  /** Guids whose confirmed write changed: one array per round of the dispatcher. */
  readonly confirmations: PubSub.PubSub<ReadonlyArray<string>>
  /** pbxWrites per PBX and result, with the attributes resolved once per pair rather than once per write. */
  readonly counters: Map<string, Metric.Metric<number, unknown>>
  /** Whether `idle` is open (a flag and a latch: with one change per POST, each change makes the writer busy and idle). */
  idleNow: boolean
  /** Whether a wake is queued (`wakeSoon`): the users and answers of one task wake the dispatcher once. */
  wakeQueued: boolean
  /** A cluster's send fence (SendFence.ts), while one is installed. */
  fence: Fence | undefined
}

export const makeDispatcher = Effect.fnUntraced(function*(services: {
  readonly settings: PbxSettings["Service"]
  readonly connections: PbxConnections["Service"]
  readonly directory: PbxDirectory["Service"]
}): Effect.fn.Return<Dispatcher, never, Scope.Scope> {
  return {
    ...services,
    state: new WriterState(),
    wake: yield* Latch.make(false),
    idle: yield* Latch.make(true),
    retries: yield* FiberMap.make<string>(),
    completed: [],
    confirmations: yield* PubSub.unbounded<ReadonlyArray<string>>(),
    counters: new Map(),
    idleNow: true,
    wakeQueued: false,
    fence: undefined
  }
})

/**
 * Queues users for the dispatcher and wakes it once the current task has returned (`wakeSoon`): the writes of one
 * task go out in one round, and they leave in this turn of the event loop, not after the next (`Latch.open` schedules
 * the dispatcher's resume for a later turn: one more turn per change with many tenants of one item per POST).
 */
export const wakeFor = (dispatcher: Dispatcher, guids: Iterable<string>): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (!dispatcher.state.enqueue(guids)) return Effect.void
    wakeSoon(dispatcher)
    if (dispatcher.idleNow) {
      dispatcher.idleNow = false
      Latch.closeUnsafe(dispatcher.idle)
    }
    return Effect.void
  })

const countWrites = (dispatcher: Dispatcher, pbx: string, result: "ok" | "error", writes: number) => {
  const name = `${result} ${pbx}`
  let counter = dispatcher.counters.get(name)
  if (counter === undefined) {
    counter = pbxWritesOf(pbx, result)
    dispatcher.counters.set(name, counter)
  }
  return Metric.update(counter, writes)
}

const scheduleRetry = Effect.fnUntraced(function*(dispatcher: Dispatcher, guid: string, entry: DesiredPresence) {
  if (entry.failures >= maxAttempts) {
    return yield* Effect.logError(
      `SetPresence for user ${guid} failed ${entry.failures} times; giving up until the next change or reconnect`
    )
  }
  const delay = Math.min(retryBaseMs * 2 ** (entry.failures - 1), retryMaxMs)
  yield* FiberMap.run(dispatcher.retries, guid, Effect.andThen(Effect.sleep(delay), wakeFor(dispatcher, [guid])))
})

/**
 * Wakes the dispatcher, for users queued or answers recorded, once the code that queued or recorded them has returned.
 * Opening the latch at once would resume the dispatcher inside the caller (the connection's callback, the presence
 * pipeline), for a whole round per answer or chunk; a microtask lets the message loop route every answer of a socket
 * read first, and one round then handles them all (and starts the next writes together, leaving in one socket write).
 */
const wakeSoon = (dispatcher: Dispatcher): void => {
  if (dispatcher.wakeQueued) return
  dispatcher.wakeQueued = true
  queueMicrotask(() => {
    dispatcher.wakeQueued = false
    Latch.openUnsafe(dispatcher.wake)
  })
}

/** Starts one user's SetPresence, unless it needs none or (fenced) a check first; true when a request is now in flight. */
const start = Effect.fnUntraced(function*(dispatcher: Dispatcher, guid: string, now: number) {
  const entry = dispatcher.state.desired.get(guid)
  if (entry === undefined) return false
  const { fence } = dispatcher
  const fresh = fence === undefined || dispatcher.state.takeFresh(guid, now, fence.freshMs)
  const { user, pbx } = yield* routeOf(dispatcher, guid)
  const connection = yield* dispatcher.connections.get(pbx)
  if (Option.isNone(connection)) {
    // Kept in `desired`; sent again when this PBX logs in.
    yield* Effect.logDebug(`SetPresence for user ${guid} waits for PBX ${pbx} to reconnect`)
    return false
  }
  const connectionId = connection.value.id
  if (dispatcher.state.alreadyConfirmed(guid, entry.command, pbx, connectionId)) return false
  if (fence !== undefined && !fresh) {
    fence.waiting.add(guid)
    Latch.openUnsafe(fence.wake)
    return false
  }
  const sip = Option.isSome(user) ? user.value.h323 : ""
  // A write without a trace (no tracing backend, or a read) builds no span attributes and yields no effect for it.
  const span = entry.span === undefined ? undefined : yield* childSpan("PresenceWriter.SetPresence", entry.span, {
    kind: "client",
    attributes: { "pbx.name": pbx, "pbx.command": commandLabel(entry.command) }
  })
  yield* connection.value.requestWith(setPresenceRequest(guid, sip, dispatcher.settings.contact, entry.command), (outcome) => {
    dispatcher.completed.push({ guid, entry, pbx, connectionId, outcome, span })
    wakeSoon(dispatcher)
  })
  return true
})

/**
 * What one round's confirmed writes add to the metrics, counted while the round goes through its answers and recorded
 * once at its end: the writes per PBX, and each write's delays (seconds) since its change was received and decrypted.
 */
interface Confirmed {
  readonly guids: Array<string>
  readonly perPbx: Map<string, number>
  readonly sinceReceived: Array<number>
  readonly sinceDecrypted: Array<number>
}

/** An answered request: the confirmed state, and what it adds to the round's metrics. Synchronous: one per write. */
const confirm = (dispatcher: Dispatcher, completion: Completion, now: number, round: Confirmed): void => {
  const { guid, entry, pbx, connectionId } = completion
  round.perPbx.set(pbx, (round.perPbx.get(pbx) ?? 0) + 1)
  if (entry.receivedAt !== undefined) round.sinceReceived.push(Math.max(0, now - entry.receivedAt) / 1000)
  if (entry.decryptedAt !== undefined) round.sinceDecrypted.push(Math.max(0, now - entry.decryptedAt) / 1000)
  dispatcher.state.confirm(guid, entry.command, pbx, connectionId, now)
  round.guids.push(guid)
}

/** The bookkeeping of one answered or failed request: its span, then the confirmed state, or a retry. */
const complete = Effect.fnUntraced(function*(dispatcher: Dispatcher, completion: Completion, now: number, round: Confirmed) {
  const { guid, entry, pbx, outcome, span } = completion
  dispatcher.state.release(guid)
  if (span !== undefined) yield* endSpan(span, outcome._tag === "Failed" ? Exit.fail(outcome.error) : Exit.void)
  if (outcome._tag === "Answered") return confirm(dispatcher, completion, now, round)
  yield* countWrites(dispatcher, pbx, "error", 1)
  const error = outcome.error
  yield* Effect.logWarning(`SetPresence ${commandLabel(entry.command)} for user ${guid} on PBX ${pbx}: ${clip(error.message, 300)}`)
  if (error.reason === "disconnected") return
  const failed = dispatcher.state.failed(guid, entry)
  if (failed !== undefined) yield* scheduleRetry(dispatcher, guid, failed)
})

/** The round's confirmed writes into the metrics: one update per PBX, the delays in one pass. */
const recordConfirmed = (dispatcher: Dispatcher, round: Confirmed): Effect.Effect<void> =>
  Effect.andThen(
    Effect.forEach(round.perPbx, ([pbx, writes]) => countWrites(dispatcher, pbx, "ok", writes), { discard: true }),
    Effect.contextWith((context: Context.Context<never>) =>
      Effect.sync(() => {
        for (const seconds of round.sinceReceived) notificationToPbxSecondsOf.updateUnsafe(seconds, context)
        for (const seconds of round.sinceDecrypted) decryptedToPbxSecondsOf.updateUnsafe(seconds, context)
      })
    )
  )

/**
 * Handles the answers that came in since the last round; publishes the users whose confirmed write changed. A plain
 * answer costs no effect of its own: the round reads the clock once and records its metrics together.
 */
const completeAll = Effect.fnUntraced(function*(dispatcher: Dispatcher) {
  if (dispatcher.completed.length === 0) return
  const now = yield* Clock.currentTimeMillis
  const round: Confirmed = { guids: [], perPbx: new Map(), sinceReceived: [], sinceDecrypted: [] }
  while (dispatcher.completed.length > 0) {
    for (const completion of dispatcher.completed.splice(0, dispatcher.completed.length)) {
      if (completion.outcome._tag === "Answered" && completion.span === undefined) {
        dispatcher.state.release(completion.guid)
        confirm(dispatcher, completion, now, round)
        continue
      }
      yield* complete(dispatcher, completion, now, round).pipe(
        Effect.catchCause((cause) => Effect.logError(`SetPresence bookkeeping for user ${completion.guid} failed`, cause))
      )
    }
  }
  yield* recordConfirmed(dispatcher, round)
  if (round.guids.length > 0) yield* PubSub.publish(dispatcher.confirmations, round.guids)
})

/** Starts as many queued users as there are free places: the work per wake is what is started, never what waits. */
const startReady = Effect.fnUntraced(function*(dispatcher: Dispatcher) {
  const now = dispatcher.fence === undefined ? 0 : yield* Clock.currentTimeMillis
  while (true) {
    const guid = dispatcher.state.take(maxConcurrent)
    if (guid === undefined) return
    // A defect while starting one write must not stop the dispatcher: it is logged and the user is not in flight.
    const started = yield* start(dispatcher, guid, now).pipe(
      Effect.catchCause((cause) => Effect.logError(`SetPresence for user ${guid} could not be sent`, cause).pipe(Effect.as(false)))
    )
    if (!started) dispatcher.state.release(guid)
  }
})

/** The dispatcher's loop, forked once by the writer's layer. */
export const runDispatcher = Effect.fnUntraced(function*(dispatcher: Dispatcher) {
  while (true) {
    yield* Latch.close(dispatcher.wake)
    yield* completeAll(dispatcher)
    yield* startReady(dispatcher)
    const fenceQuiet = dispatcher.fence === undefined || (dispatcher.fence.waiting.size === 0 && !dispatcher.fence.checking)
    if (dispatcher.state.quiet && fenceQuiet && dispatcher.completed.length === 0 && (yield* FiberMap.size(dispatcher.retries)) === 0) {
      dispatcher.idleNow = true
      // Resumes a waiting `flush` from the scheduler, not inside this fiber; without one, no more than a flag.
      yield* Latch.open(dispatcher.idle)
    }
    if (dispatcher.completed.length === 0) yield* Latch.await(dispatcher.wake)
  }
})
