/**
 * The connector's flow, as fibers owned by one layer: the presence pipeline (changes → mapping → the PBX writer), the
 * planner (Teams users + PBX directory + licences → the plan → presence subscriptions and the presence source) and the
 * triggers that make it plan again. Each fiber is supervised: a failure is logged and the fiber restarts with backoff,
 * without stopping the others. The flow stops first, so that nothing is written after it cleared what it set.
 */
import { Effect, Fiber, Layer, Schedule } from "effect"
import { clearPresence } from "../domain/PbxPresence.ts"
import { PresenceWriter } from "../pbx/writer/PresenceWriter.ts"
import { FlowConfig } from "./FlowConfig.ts"
import { Planner } from "./Planner.ts"
import { PresencePipeline, writeOf } from "./PresencePipeline.ts"
import { triggerSources } from "./Triggers.ts"

/** Restarts a long-running child after a failure, with backoff, and says so in the log. */
const supervised = <E, R>(name: string, effect: Effect.Effect<void, E, R>) =>
  effect.pipe(
    Effect.tapCause((cause) => Effect.logError(`${name} failed; restarting`, cause)),
    Effect.retry(Schedule.min([Schedule.exponential("1 second", 2), Schedule.spaced("1 minute")])),
    Effect.forkScoped
  )

/**
 * Shutdown, in order: stop taking presence changes and planning, optionally clear every Teams presence the connector
 * set, then let the writer deliver what is pending. (Subscriptions are deleted, if configured, when their layer closes.)
 */
const stop = Effect.fn("Flow.stop")(function*(
  clearOnShutdown: boolean,
  writer: PresenceWriter["Service"],
  intake: ReadonlyArray<Fiber.Fiber<unknown, unknown>>
) {
  yield* Fiber.interruptAll(intake)
  if (clearOnShutdown) {
    const set = [...(yield* writer.desired)].filter(([, held]) => held.command._tag === "Set")
    yield* Effect.logInfo(`shutting down: clearing ${set.length} Teams presences`)
    yield* writer.writeAll(set.map(([guid]) => writeOf(guid, clearPresence)))
  }
  yield* writer.flush.pipe(Effect.timeout("10 seconds"), Effect.ignore)
})

export const FlowLayer = Layer.effectDiscard(Effect.gen(function*() {
  const settings = yield* FlowConfig
  const writer = yield* PresenceWriter
  const pipeline = yield* PresencePipeline
  const planner = yield* Planner
  // Subscribed here, before the planner's initial sync, so that nothing it reads is missed.
  const intake = yield* supervised("presence pipeline", yield* pipeline.subscribe)
  const planning = yield* supervised("planner", planner.run)
  for (const [name, source] of yield* triggerSources()) yield* supervised(name, source)
  yield* Effect.addFinalizer(() => stop(settings.clearOnShutdown, writer, [intake, planning]))
}))
