/**
 * Writes presence into the PBX with SetPresence (protocols.md §2.4). Latest state wins: writes coalesce per user, so
 * a burst for one user sends only its newest state. Each write goes on the connection of the user's `loc` PBX, else
 * the master's; while that PBX is disconnected the state is kept, and when it logs in again the current state of
 * every user on it is sent again. Refused writes are logged and retried with backoff.
 */
import { Clock, Context, Effect, FiberMap, FiberSet, Latch, Layer, Metric, Option, PubSub, Semaphore, Stream, SubscriptionRef } from "effect"
import { commandEquals, commandLabel, type PbxPresenceCommand } from "../domain/PbxPresence.ts"
import { notificationToPbxSeconds, pbxWrites } from "../domain/Metrics.ts"
import type { PbxConnection } from "./PbxConnection.ts"
import { PbxConnections } from "./PbxConnections.ts"
import { PbxSettings } from "./PbxSettings.ts"
import { PbxDirectory } from "./UserDirectory.ts"

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
const maxConcurrent = 32

interface Desired {
  readonly command: PbxPresenceCommand
  readonly receivedAt: number | undefined
  /** Failed attempts for this command; reset by a new command. */
  readonly failures: number
}

export class PresenceWriter extends Context.Service<PresenceWriter, {
  readonly write: (guid: string, command: PbxPresenceCommand, meta?: { readonly receivedAt?: number }) => Effect.Effect<void>
  /** Waits until no write is queued, in flight or waiting for a retry (writes held for a disconnected PBX excepted). */
  readonly flush: Effect.Effect<void>
  /** What each PBX last confirmed, per user guid. */
  readonly current: Effect.Effect<ReadonlyMap<string, WrittenPresence>>
}>()("presence-connector/pbx/PresenceWriter") {
  static readonly layer = Layer.effect(
    PresenceWriter,
    Effect.gen(function*() {
      const settings = yield* PbxSettings
      const connections = yield* PbxConnections
      const directory = yield* PbxDirectory
      const desired = new Map<string, Desired>()
      const written = new Map<string, WrittenPresence & { readonly connectionId: number }>()
      const dirty = new Set<string>()
      const inFlight = new Set<string>()
      const wake = yield* Latch.make(false)
      const idle = yield* SubscriptionRef.make(true)
      const retries = yield* FiberMap.make<string>()

      const markDirty = (guids: Iterable<string>) =>
        Effect.gen(function*() {
          let any = false
          for (const guid of guids) {
            dirty.add(guid)
            any = true
          }
          if (any) {
            yield* SubscriptionRef.set(idle, false)
            yield* Latch.open(wake)
          }
        })

      /** The PBX a user's writes go to: its `loc` PBX when that PBX has an App connection (now or before), else the master. */
      const targetOf = Effect.fnUntraced(function*(guid: string) {
        const user = yield* directory.get(guid)
        const states = yield* SubscriptionRef.get(connections.states)
        const loc = Option.getOrUndefined(Option.map(user, (value) => value.loc))
        return loc !== undefined && loc !== "" && states.has(loc) ? loc : settings.masterPbx
      })

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

      const sendOne = Effect.fnUntraced(function*(guid: string) {
        const entry = desired.get(guid)
        if (entry === undefined) return
        const pbx = yield* targetOf(guid)
        const connection: Option.Option<PbxConnection> = yield* connections.get(pbx)
        if (Option.isNone(connection)) {
          // Kept in `desired`; sent again when this PBX logs in.
          return yield* Effect.logDebug(`SetPresence for user ${guid} waits for PBX ${pbx} to reconnect`)
        }
        const last = written.get(guid)
        if (
          last !== undefined && last.connectionId === connection.value.id && commandEquals(last.command, entry.command)
        ) return
        const user = yield* directory.get(guid)
        const result = yield* connection.value.request({
          api: "PbxApi",
          mt: "SetPresence",
          guid,
          ...(Option.isSome(user) && user.value.h323 !== "" ? { sip: user.value.h323 } : {}),
          contact: settings.contact,
          ...presenceFields(entry.command)
        }).pipe(Effect.result)
        if (result._tag === "Failure") {
          yield* Metric.update(Metric.withAttributes(pbxWrites, { pbx, result: "error" }), 1)
          const error = result.failure
          yield* Effect.logWarning(`SetPresence ${commandLabel(entry.command)} for user ${guid} on PBX ${pbx}: ${error.message}`)
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
        yield* Metric.update(Metric.withAttributes(pbxWrites, { pbx, result: "ok" }), 1)
        if (entry.receivedAt !== undefined) {
          yield* Metric.update(notificationToPbxSeconds, Math.max(0, now - entry.receivedAt) / 1000)
        }
        written.set(guid, { command: entry.command, pbx, sentAt: now, connectionId: connection.value.id })
      })

      // Each user is sent by its own fiber, at most one in flight per user and `maxConcurrent` overall, so that a slow
      // or silent PBX never holds up the writes for the others. A change during a send waits in `dirty` for it.
      const permits = yield* Semaphore.make(maxConcurrent)
      const sending = yield* FiberSet.make()
      const worker = Effect.gen(function*() {
        while (true) {
          yield* Latch.close(wake)
          const ready = [...dirty].filter((guid) => !inFlight.has(guid))
          if (ready.length === 0) {
            if (dirty.size === 0 && inFlight.size === 0 && (yield* FiberMap.size(retries)) === 0) {
              yield* SubscriptionRef.set(idle, true)
            }
            yield* Latch.await(wake)
            continue
          }
          for (const guid of ready) {
            dirty.delete(guid)
            inFlight.add(guid)
            yield* FiberSet.run(
              sending,
              permits.withPermits(1)(sendOne(guid)).pipe(
                Effect.ensuring(Effect.andThen(Effect.sync(() => inFlight.delete(guid)), Latch.open(wake)))
              )
            )
          }
        }
      })
      yield* Effect.forkScoped(worker)

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

      const write = Effect.fn("PresenceWriter.write")(
        function*(guid: string, command: PbxPresenceCommand, meta?: { readonly receivedAt?: number }) {
          const previous = desired.get(guid)
          desired.set(guid, {
            command,
            // The oldest pending change is what the delay to the PBX is measured from.
            receivedAt: previous !== undefined && dirty.has(guid) ? previous.receivedAt ?? meta?.receivedAt : meta?.receivedAt,
            failures: 0
          })
          yield* FiberMap.remove(retries, guid)
          yield* markDirty([guid])
        }
      )

      return PresenceWriter.of({
        write,
        flush: Stream.runHead(Stream.filter(SubscriptionRef.changes(idle), (value) => value && inFlight.size === 0)).pipe(
          Effect.asVoid
        ),
        current: Effect.sync(() =>
          new Map([...written].map(([guid, { command, pbx, sentAt }]) => [guid, { command, pbx, sentAt }]))
        )
      })
    })
  )
}
