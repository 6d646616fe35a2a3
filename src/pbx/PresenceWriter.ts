/**
 * Writes presence into the PBX with SetPresence (protocols.md §2.4). Latest state wins: writes coalesce per user, so
 * a burst for one user sends only its newest state. Each write goes on the connection of the user's `loc` PBX, else
 * the master's; while that PBX is disconnected the state is kept, and when it logs in again the current state of
 * every user on it is sent again. Refused writes are logged and retried with backoff.
 */
import { Clock, Context, Effect, Exit, FiberMap, Latch, Layer, Metric, Option, PubSub, Stream, SubscriptionRef, type Tracer } from "effect"
import { clip } from "../domain/LogText.ts"
import { commandEquals, commandLabel, type PbxPresenceCommand } from "../domain/PbxPresence.ts"
import { decryptedToPbxSeconds, notificationToPbxSeconds, pbxWrites } from "../domain/Metrics.ts"
import type { PbxConnection, RequestOutcome } from "./socket/PbxConnection.ts"
import { PbxConnections } from "./socket/PbxConnections.ts"
import { PbxSettings } from "./PbxSettings.ts"
import { childSpan, endSpan } from "../observability/ChangeTrace.ts"
import { PbxDirectory } from "./directory/UserDirectory.ts"

export interface WrittenPresence {
  readonly command: PbxPresenceCommand
  readonly pbx: string
  /** Epoch milliseconds when the PBX confirmed the write. */
  readonly sentAt: number
}

/** The SetPresence fields for a command. "Clear" is activity "" and note "" on our contact (protocols.md §2.4). */
export const presenceFields = (command: PbxPresenceCommand): { readonly activity: string; readonly note: string } =>
  command._tag === "Clear" ? { activity: "", note: "" } : { activity: command.activity, note: command.note }

const maxAttempts = 6
const retryBaseMs = 200
const retryMaxMs = 30_000
/**
 * SetPresence requests in flight at once. Each costs one small fiber; the limit is there so that a PBX that stops
 * answering holds a bounded number of them. It must cover the PBX's round trip at burst rates: 32 in flight at a
 * 20–50 ms round trip caps the writes at 600–1,600/s, below what decryption delivers; 256 does not.
 */
export const maxConcurrent = 256

/** When a change reached the connector, and for a rich notification when it was decrypted (Clock milliseconds). */
export interface WriteMeta {
  readonly receivedAt?: number
  readonly decryptedAt?: number
  /** The change's span (its mapping): the SetPresence is a span below it, in the change's trace. */
  readonly span?: Tracer.AnySpan
}

export interface PresenceWrite {
  readonly guid: string
  readonly command: PbxPresenceCommand
  readonly meta?: WriteMeta | undefined
}

interface Completion {
  readonly guid: string
  /** What was sent. */
  readonly entry: Desired
  readonly pbx: string
  readonly connectionId: number
  readonly outcome: RequestOutcome
  readonly span: Tracer.Span | undefined
}

interface Desired {
  readonly command: PbxPresenceCommand
  readonly receivedAt: number | undefined
  readonly decryptedAt: number | undefined
  /** The newest change's span, when it has one. */
  readonly span: Tracer.AnySpan | undefined
  /** Failed attempts for this command; reset by a new command. */
  readonly failures: number
}

export class PresenceWriter extends Context.Service<PresenceWriter, {
  readonly write: (guid: string, command: PbxPresenceCommand, meta?: WriteMeta) => Effect.Effect<void>
  /** `write` for many users at once (a chunk of a burst): one wake of the dispatcher for all of them. */
  readonly writeAll: (writes: ReadonlyArray<PresenceWrite>) => Effect.Effect<void>
  /** Waits until no write is queued, in flight or waiting for a retry (writes held for a disconnected PBX excepted). */
  readonly flush: Effect.Effect<void>
  /** What each PBX last confirmed, per user guid: a live read-only view whose entries are replaced, never mutated. */
  readonly current: Effect.Effect<ReadonlyMap<string, WrittenPresence>>
  /**
   * Guids whose entry in `current` was replaced since the status projector last emptied this set (its only reader):
   * the user table is then rebuilt for them alone. At most one entry per user.
   */
  readonly confirmedChanges: Set<string>
}>()("teams-presence-connector/pbx/PresenceWriter") {
  static readonly layer = Layer.effect(
    PresenceWriter,
    Effect.gen(function*() {
      const settings = yield* PbxSettings
      const connections = yield* PbxConnections
      const directory = yield* PbxDirectory
      const desired = new Map<string, Desired>()
      // What each PBX confirmed, and on which connection (a new connection gets everything again). The entries are
      // replaced, never mutated, so `current` hands out the map itself (read-only): a reader that compares entries by
      // identity sees which changed, and no 10,000-entry copy blocks the event loop after every burst of writes.
      const written = new Map<string, WrittenPresence>()
      const writtenOn = new Map<string, number>()
      const confirmedChanges = new Set<string>()
      // Users waiting to be sent, oldest first. A user changed while its send is in flight waits in `again` instead,
      // so the dispatcher never has to skip over in-flight users: taking the next user is O(1).
      const ready = new ReadyQueue()
      const inFlight = new Set<string>()
      const again = new Set<string>()
      const wake = yield* Latch.make(false)
      const idle = yield* SubscriptionRef.make(true)
      let idleNow = true
      const retries = yield* FiberMap.make<string>()

      const markDirty = (guids: Iterable<string>) =>
        Effect.suspend(() => {
          let any = false
          for (const guid of guids) {
            if (inFlight.has(guid)) again.add(guid)
            else ready.push(guid)
            any = true
          }
          if (!any) return Effect.void
          const opened = Latch.open(wake)
          if (!idleNow) return opened
          idleNow = false
          return Effect.andThen(SubscriptionRef.set(idle, false), opened)
        })

      /** The PBX a user's writes go to: its `loc` PBX when that PBX has an App connection (now or before), else the master. */
      const routeOf = Effect.fnUntraced(function*(guid: string) {
        const user = yield* directory.get(guid)
        const states = yield* SubscriptionRef.get(connections.states)
        const loc = Option.getOrUndefined(Option.map(user, (value) => value.loc))
        return { user, pbx: loc !== undefined && loc !== "" && states.has(loc) ? loc : settings.masterPbx }
      })
      const targetOf = (guid: string) => Effect.map(routeOf(guid), (route) => route.pbx)

      /** pbxWrites per PBX and result, with the attributes resolved once per pair rather than once per write. */
      const writeCounters = new Map<string, Metric.Metric<number, unknown>>()
      const countWrite = (pbx: string, result: "ok" | "error") => {
        const name = `${result} ${pbx}`
        let counter = writeCounters.get(name)
        if (counter === undefined) {
          counter = Metric.withAttributes(pbxWrites, { pbx, result })
          writeCounters.set(name, counter)
        }
        return Metric.update(counter, 1)
      }

      const scheduleRetry = (guid: string, entry: Desired) =>
        Effect.gen(function*() {
          if (entry.failures >= maxAttempts) {
            return yield* Effect.logError(
              `SetPresence for user ${guid} failed ${entry.failures} times; giving up until the next change or reconnect`
            )
          }
          const delay = Math.min(retryBaseMs * 2 ** (entry.failures - 1), retryMaxMs)
          yield* FiberMap.run(retries, guid, Effect.andThen(Effect.sleep(delay), markDirty([guid])))
        })

      /** Answers (or failures) of sent requests, recorded by the connection's callback, handled by the dispatcher. */
      const completed: Array<Completion> = []

      /** Starts one user's SetPresence, unless it needs none; true when a request is now in flight. */
      const start = Effect.fnUntraced(function*(guid: string) {
        const entry = desired.get(guid)
        if (entry === undefined) return false
        const { user, pbx } = yield* routeOf(guid)
        const connection: Option.Option<PbxConnection> = yield* connections.get(pbx)
        if (Option.isNone(connection)) {
          // Kept in `desired`; sent again when this PBX logs in.
          yield* Effect.logDebug(`SetPresence for user ${guid} waits for PBX ${pbx} to reconnect`)
          return false
        }
        const last = written.get(guid)
        if (
          last !== undefined && writtenOn.get(guid) === connection.value.id && commandEquals(last.command, entry.command)
        ) return false
        const connectionId = connection.value.id
        const span = yield* childSpan("PresenceWriter.SetPresence", entry.span, {
          kind: "client",
          attributes: { "pbx.name": pbx, "pbx.command": commandLabel(entry.command) }
        })
        yield* connection.value.requestWith({
          api: "PbxApi",
          mt: "SetPresence",
          guid,
          ...(Option.isSome(user) && user.value.h323 !== "" ? { sip: user.value.h323 } : {}),
          contact: settings.contact,
          ...presenceFields(entry.command)
        }, (outcome) => {
          completed.push({ guid, entry, pbx, connectionId, outcome, span })
          Latch.openUnsafe(wake)
        })
        return true
      })

      /** The bookkeeping of one answered or failed request; the user may then be sent again. */
      /** A user's write is no longer in flight; if it changed meanwhile, it queues again. */
      const release = (guid: string) => {
        inFlight.delete(guid)
        if (again.delete(guid)) ready.push(guid)
      }

      const complete = Effect.fnUntraced(function*({ guid, entry, pbx, connectionId, outcome, span }: Completion) {
        release(guid)
        yield* endSpan(span, outcome._tag === "Failed" ? Exit.fail(outcome.error) : Exit.void)
        if (outcome._tag === "Failed") {
          yield* countWrite(pbx, "error")
          const error = outcome.error
          yield* Effect.logWarning(`SetPresence ${commandLabel(entry.command)} for user ${guid} on PBX ${pbx}: ${clip(error.message, 300)}`)
          if (error.reason === "disconnected") return
          const current = desired.get(guid)
          if (current !== undefined && current.command === entry.command) {
            const failed = { ...current, failures: current.failures + 1 }
            desired.set(guid, failed)
            yield* scheduleRetry(guid, failed)
          }
          return
        }
        const now = yield* Clock.currentTimeMillis
        yield* countWrite(pbx, "ok")
        if (entry.receivedAt !== undefined) {
          yield* Metric.update(notificationToPbxSeconds, Math.max(0, now - entry.receivedAt) / 1000)
        }
        if (entry.decryptedAt !== undefined) {
          yield* Metric.update(decryptedToPbxSeconds, Math.max(0, now - entry.decryptedAt) / 1000)
        }
        written.set(guid, { command: entry.command, pbx, sentAt: now })
        confirmedChanges.add(guid)
        writtenOn.set(guid, connectionId)
      })

      // One fiber sends and completes every write: at most one request in flight per user and `maxConcurrent`
      // overall, so that a slow or silent PBX never holds up the writes for the others (its requests time out). A
      // request costs no fiber of its own: its answer is queued by the connection's callback and handled here. Each
      // wake starts only as many users as there are free places: the work per wake is proportional to what is
      // started and answered, never to the number of users waiting.
      const dispatcher = Effect.gen(function*() {
        while (true) {
          yield* Latch.close(wake)
          while (completed.length > 0) {
            const batch = completed.splice(0, completed.length)
            for (const completion of batch) {
              yield* complete(completion).pipe(
                Effect.catchCause((cause) => Effect.logError(`SetPresence bookkeeping for user ${completion.guid} failed`, cause))
              )
            }
          }
          while (inFlight.size < maxConcurrent) {
            const guid = ready.shift()
            if (guid === undefined) break
            inFlight.add(guid)
            // A defect while starting one write must not stop the dispatcher: it is logged and the user is not in flight.
            const started = yield* start(guid).pipe(
              Effect.catchCause((cause) => Effect.logError(`SetPresence for user ${guid} could not be sent`, cause).pipe(Effect.as(false)))
            )
            if (!started) release(guid)
          }
          if (
            ready.size === 0 && inFlight.size === 0 && again.size === 0 && completed.length === 0 &&
            (yield* FiberMap.size(retries)) === 0
          ) {
            idleNow = true
            yield* SubscriptionRef.set(idle, true)
          }
          if (completed.length === 0) yield* Latch.await(wake)
        }
      })
      yield* Effect.forkScoped(dispatcher)

      // After a PBX logs in, send the current state of every user that belongs on it again.
      const events = yield* connections.subscribe
      yield* Effect.gen(function*() {
        while (true) {
          const event = yield* PubSub.take(events)
          if (event._tag !== "Up") continue
          const guids: Array<string> = []
          for (const guid of desired.keys()) {
            if ((yield* targetOf(guid)) === event.connection.pbx) guids.push(guid)
          }
          if (guids.length > 0) {
            yield* Effect.logInfo(`PBX ${event.connection.pbx} logged in: sending the presence of ${guids.length} users again`)
          }
          yield* markDirty(guids)
        }
      }).pipe(Effect.forkScoped)

      const writeAll = Effect.fnUntraced(function*(writes: ReadonlyArray<PresenceWrite>) {
        if (writes.length === 0) return
        const retrying = (yield* FiberMap.size(retries)) > 0
        for (const { guid, command, meta } of writes) {
          const previous = desired.get(guid)
          const pending = ready.has(guid) || again.has(guid)
          desired.set(guid, {
            command,
            // The oldest pending change is what the delay to the PBX is measured from.
            receivedAt: previous !== undefined && pending ? previous.receivedAt ?? meta?.receivedAt : meta?.receivedAt,
            decryptedAt: previous !== undefined && pending ? previous.decryptedAt ?? meta?.decryptedAt : meta?.decryptedAt,
            span: meta?.span,
            failures: 0
          })
          // A new command replaces a retry of the old one.
          if (retrying) yield* FiberMap.remove(retries, guid)
        }
        yield* markDirty(writes.map((w) => w.guid))
      })
      const write = (guid: string, command: PbxPresenceCommand, meta?: WriteMeta) => writeAll([{ guid, command, meta }])

      return PresenceWriter.of({
        write,
        writeAll,
        flush: Stream.runHead(Stream.filter(SubscriptionRef.changes(idle), (value) => value && inFlight.size === 0)).pipe(
          Effect.asVoid
        ),
        current: Effect.succeed<ReadonlyMap<string, WrittenPresence>>(written),
        confirmedChanges
      })
    })
  )
}

/** A FIFO of user guids without duplicates: O(1) push, shift and membership. */
class ReadyQueue {
  private items: Array<string> = []
  private head = 0
  private readonly members = new Set<string>()

  get size(): number {
    return this.members.size
  }

  has(guid: string): boolean {
    return this.members.has(guid)
  }

  push(guid: string): void {
    if (this.members.has(guid)) return
    this.members.add(guid)
    this.items.push(guid)
  }

  shift(): string | undefined {
    if (this.head >= this.items.length) return undefined
    const guid = this.items[this.head++]!
    this.members.delete(guid)
    // Drop the consumed prefix once it is most of the array, so memory stays proportional to what is queued.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return guid
  }
}
