/**
 * The presence pipeline, the flow's hot path: PresenceSource.changes → the mapping (domain/PresenceMapping.ts) → the
 * plan's PBX user → PresenceWriter.writeAll, a chunk at a time. It keeps the latest mapped presence per Teams user (what
 * the status page shows, and what a newly planned user gets written) and publishes which of them changed. It decides
 * nothing about "only what changed": PresenceSource emits only changed presences, the writer drops a command it holds.
 */
import { Channel, Context, Effect, Exit, Layer, Metric, Option, PubSub, type Scope, Stream, SubscriptionRef, type Tracer } from "effect"
import { clip } from "../domain/LogText.ts"
import { unknownPresences } from "../domain/Metrics.ts"
import { commandLabel, type PbxPresenceCommand } from "../domain/PbxPresence.ts"
import type { GraphPresence } from "../domain/Presence.ts"
import { mapPresenceDetailed } from "../domain/PresenceMapping.ts"
import { teamsKey } from "../domain/TeamsId.ts"
import { type PresenceChange, PresenceSource } from "../graph/presence/PresenceSource.ts"
import { childSpan, endSpan } from "../observability/ChangeTrace.ts"
import { PresenceWriter } from "../pbx/writer/PresenceWriter.ts"
import type { PresenceWrite } from "../pbx/writer/WriterState.ts"
import { CallGuard } from "./calls/CallGuard.ts"
import { FlowConfig } from "./FlowConfig.ts"
import { PlanState } from "./PlanState.ts"

/** What the flow knows per Teams user. Rows are replaced, never mutated: a reader may compare them by identity. */
export interface PresenceRow {
  readonly presence: GraphPresence
  readonly command: PbxPresenceCommand
  readonly receivedAt: number
  readonly origin: PresenceChange["origin"]
}

/** A write for the PBX user `guid`, with when its change was received (and decrypted) for the latency metrics. */
export const writeOf = (
  guid: string,
  command: PbxPresenceCommand,
  receivedAt?: number,
  decryptedAt?: number,
  span?: Tracer.AnySpan
): PresenceWrite => {
  // Assigned, not spread: one object per write on the hot path of a burst instead of four.
  const meta: { receivedAt?: number; decryptedAt?: number; span?: Tracer.AnySpan } = {}
  if (receivedAt !== undefined) meta.receivedAt = receivedAt
  if (decryptedAt !== undefined) meta.decryptedAt = decryptedAt
  if (span !== undefined) meta.span = span
  return { guid, command, meta }
}

export class PresencePipeline extends Context.Service<PresencePipeline, {
  /** The latest row per Teams user, by `teamsKey`: a live read-only view. */
  readonly rows: Effect.Effect<ReadonlyMap<string, PresenceRow>>
  /**
   * Subscribes to the Teams keys whose row was replaced, one array per chunk of changes: the subscription queues
   * them until its owner takes them (the status projector, a batch per projection).
   */
  readonly rowChanges: Effect.Effect<PubSub.Subscription<ReadonlyArray<string>>, never, Scope.Scope>
  /**
   * Subscribes to the presence changes now, and returns the loop that consumes them (the flow forks and supervises
   * it). Subscribing first means nothing the initial sync reads can pass before the loop runs.
   */
  readonly subscribe: Effect.Effect<Effect.Effect<void>, never, Scope.Scope>
}>()("teams-presence-connector/connector/PresencePipeline") {
  static readonly layer = Layer.effect(
    PresencePipeline,
    Effect.gen(function*() {
      const settings = yield* FlowConfig
      const planState = yield* PlanState
      const writer = yield* PresenceWriter
      const source = yield* PresenceSource
      // The loop guard of PBX → Teams (src/connector/calls/CallGuard.ts), when that direction is on.
      const guard = yield* Effect.serviceOption(CallGuard)
      const rows = new Map<string, PresenceRow>()
      const rowChanges = yield* PubSub.unbounded<ReadonlyArray<string>>()

      /** A chunk of changes: each mapped and recorded; those of planned users handed to the writer together. */
      const onChanges = Effect.fnUntraced(function*(changes: ReadonlyArray<PresenceChange>) {
        const plan = yield* SubscriptionRef.get(planState.plan)
        const writes: Array<PresenceWrite> = []
        const keys: Array<string> = []
        for (const change of changes) {
          const key = teamsKey(change.userId)
          // A pushed change carries its trace: the mapping is a span in it, and the parent of the SetPresence. A change
          // without one (no tracing backend, or a read) costs no effect and no attributes here.
          const span = change.span === undefined ? undefined : yield* childSpan("Flow.map", change.span)
          const result = mapPresenceDetailed(change.presence, settings.mapping)
          if (span !== undefined) yield* endSpan(span, Exit.void, { "pbx.command": commandLabel(result.command), "mapping.basis": result.basis })
          if (result.basis === "none") yield* reportUnknown(change)
          rows.set(key, { presence: change.presence, command: result.command, receivedAt: change.receivedAt, origin: change.origin })
          keys.push(key)
          // What only shows a PBX call's own session is not written back (it may come again on `released`).
          if (Option.isSome(guard) && !(yield* guard.value.admit(key, change))) continue
          const synced = plan.byTeamsId.get(key)
          if (synced !== undefined) writes.push(writeOf(synced.pbx.guid, result.command, change.receivedAt, change.decryptedAt, span))
        }
        yield* writer.writeAll(writes)
        yield* PubSub.publish(rowChanges, keys)
      })

      return PresencePipeline.of({
        rows: Effect.succeed<ReadonlyMap<string, PresenceRow>>(rows),
        rowChanges: PubSub.subscribe(rowChanges),
        // Subscribed now, in the caller's scope, so no change published from here on is missed. Not Stream.toPull: it
        // provides the whole context again on every pull, which copies every service of the connector per chunk.
        subscribe: Effect.flatMap(Effect.scope, (scope) => Channel.toPullScoped(source.changes.channel, scope)).pipe(Effect.map((pull) => {
          const changes = Stream.fromPull(Effect.succeed(pull))
          return Stream.runForEachArray(Option.isSome(guard) ? Stream.merge(changes, guard.value.released) : changes, onChanges)
        }))
      })
    })
  )
}

const reportUnknown = (change: PresenceChange) =>
  Effect.andThen(
    Metric.update(unknownPresences, 1),
    Effect.logWarning(`unknown Teams presence for ${clip(change.userId, 60)}; cleared: ${clip(change.presence, 300)}`)
  )
