/**
 * Writes presence into the PBX with SetPresence (protocols.md §2.4). Latest state wins: writes coalesce per user, so a
 * burst for one user sends only its newest state, and a command the writer already holds is not taken again (the one
 * place the PBX side decides "only what changed": WriterState.ts). One fiber sends and completes every write, each on
 * the connection of the user's PBX (Dispatcher.ts); while that PBX is disconnected the state is kept, and when it logs
 * in again the current state of every user on it is sent again (Resend.ts).
 */
import { Clock, Context, Effect, FiberMap, Latch, Layer, PubSub, type Scope } from "effect"
import type { PbxPresenceCommand } from "../../domain/PbxPresence.ts"
import { PbxDirectory } from "../directory/PbxDirectory.ts"
import { PbxSettings } from "../PbxSettings.ts"
import { PbxConnections } from "../socket/PbxConnections.ts"
import { type Dispatcher, makeDispatcher, runDispatcher, wakeFor } from "./Dispatcher.ts"
import { followRoutes } from "./Resend.ts"
import { installFence } from "./SendFence.ts"
import type { DesiredPresence, Fence, PresenceWrite, WriteMeta, WrittenPresence } from "./WriterState.ts"

export class PresenceWriter extends Context.Service<PresenceWriter, {
  readonly write: (guid: string, command: PbxPresenceCommand, meta?: WriteMeta) => Effect.Effect<void>
  /** `write` for many users at once (a chunk of a burst): one wake of the dispatcher for all of them. */
  readonly writeAll: (writes: ReadonlyArray<PresenceWrite>) => Effect.Effect<void>
  /** Waits until no write is queued, in flight or waiting for a retry (writes held for a disconnected PBX excepted). */
  readonly flush: Effect.Effect<void>
  /** What each PBX last confirmed, per user guid: a live read-only view whose entries are replaced, never mutated. */
  readonly current: Effect.Effect<ReadonlyMap<string, WrittenPresence>>
  /** The command held for each user guid (the latest handed over, sent or not): a live read-only view. */
  readonly desired: Effect.Effect<ReadonlyMap<string, DesiredPresence>>
  /**
   * Subscribes to the guids whose entry in `current` was replaced, one array per round of the dispatcher: the
   * subscription queues them until its owner takes them (the status projector, a batch per projection).
   */
  readonly confirmations: Effect.Effect<PubSub.Subscription<ReadonlyArray<string>>, never, Scope.Scope>
  /**
   * Takes the commands the PBXs had confirmed to an earlier process (the state store's) as confirmed, so that a
   * restart does not write them again on each PBX's first connection (WriterState.ts `inherit`). Returns how many.
   * Absent from a writer that keeps its commands elsewhere (a cluster's desired commands).
   */
  readonly inherit?: (commands: ReadonlyArray<{ readonly guid: string; readonly pbx: string; readonly command: PbxPresenceCommand }>) => Effect.Effect<number>
  /**
   * A cluster's sender fences the writer for the scope's life (SendFence.ts): a command is sent without a check only
   * right after its hand-over; a retry or re-send first asks `check`, and what it does not keep is forgotten.
   */
  readonly fence?: (check: Fence["check"]) => Effect.Effect<void, never, Scope.Scope>
}>()("teams-presence-connector/pbx/writer/PresenceWriter") {
  static readonly layer = Layer.effect(
    PresenceWriter,
    Effect.gen(function*() {
      const connections = yield* PbxConnections
      const dispatcher = yield* makeDispatcher({ settings: yield* PbxSettings, connections, directory: yield* PbxDirectory })
      const events = yield* connections.subscribe
      yield* Effect.forkScoped(runDispatcher(dispatcher))
      yield* followRoutes(dispatcher, events)
      const writeAll = accept(dispatcher)
      return PresenceWriter.of({
        write: (guid, command, meta) => writeAll([{ guid, command, meta }]),
        writeAll,
        flush: flushOf(dispatcher),
        current: Effect.succeed<ReadonlyMap<string, WrittenPresence>>(dispatcher.state.confirmed),
        desired: Effect.succeed<ReadonlyMap<string, DesiredPresence>>(dispatcher.state.desired),
        confirmations: PubSub.subscribe(dispatcher.confirmations),
        inherit: (commands) => Effect.sync(() => dispatcher.state.inherit(commands)),
        fence: (check) => installFence(dispatcher, check)
      })
    })
  )
}

/** Waits until the dispatcher is idle (nothing queued, in flight or waiting for a retry) with nothing in flight. */
const flushOf = (dispatcher: Dispatcher): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (dispatcher.idleNow && dispatcher.state.inFlightCount === 0) return Effect.void
    // Idle implies nothing in flight (the dispatcher's `quiet`); should that ever not hold, look again shortly.
    return Effect.andThen(dispatcher.idleNow ? Effect.sleep(10) : Latch.await(dispatcher.idle), flushOf(dispatcher))
  })

/** The writer's intake: the changed commands replace what is held (and any retry of it) and wake the dispatcher once. */
const accept = (dispatcher: Dispatcher) =>
  Effect.fnUntraced(function*(writes: ReadonlyArray<PresenceWrite>) {
    if (writes.length === 0) return
    // A fenced writer notes when each command was handed over: it may be sent once without a check.
    const changed = dispatcher.state.accept(writes, dispatcher.fence === undefined ? undefined : yield* Clock.currentTimeMillis)
    if (changed.length === 0) return
    if ((yield* FiberMap.size(dispatcher.retries)) > 0) {
      for (const guid of changed) yield* FiberMap.remove(dispatcher.retries, guid)
    }
    yield* wakeFor(dispatcher, changed)
  })
