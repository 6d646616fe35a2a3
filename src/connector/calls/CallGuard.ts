/**
 * Where Teams presences enter the Teams → PBX pipeline, the loop guard holds back what only shows the connector's own
 * session (LoopGuard.ts). What it held back is not lost: when the grace after the call has passed, the user's latest
 * presence, if it was held back, is handed to the pipeline again — it then is the user's own state (a real Teams call,
 * a status picked by hand) and is written as usual. Without the PBX → Teams direction there is no guard: the flow
 * then writes every presence.
 */
import { Clock, Context, Effect, FiberMap, Layer, Metric, PubSub, Stream } from "effect"
import type { PresenceChange } from "../../graph/presence/PresenceSource.ts"
import { type GuardWindow, holdsBack, type OwnSession } from "./LoopGuard.ts"

/** `connector_pbx_call_echoes_held_total`: Teams presences not written to the PBX because they showed its own call. */
export const callEchoesHeld = Metric.counter("connector_pbx_call_echoes_held_total", {
  description: "Teams presences held back from the PBX because they only showed the connector's own session for a PBX call",
  incremental: true
})

export class CallGuard extends Context.Service<CallGuard, {
  /** False when the change must not be written to the PBX now (the flow skips it; it may come back on `released`). */
  readonly admit: (key: string, change: PresenceChange) => Effect.Effect<boolean>
  /** Presences held back during a call that are still the user's latest when the grace has passed. */
  readonly released: Stream.Stream<PresenceChange>
  /** The connector begins to show the user's PBX call in Teams (Teams key, Clock milliseconds). */
  readonly begin: (key: string, at: number) => Effect.Effect<void>
  /** The call ended: the guard stays for the grace period. */
  readonly end: (key: string, at: number) => Effect.Effect<void>
}>()("teams-presence-connector/connector/calls/CallGuard") {
  static readonly layer = (session: OwnSession, graceMillis: number) =>
    Layer.effect(CallGuard, Effect.gen(function*() {
      const windows = new Map<string, GuardWindow>()
      const held = new Map<string, PresenceChange>()
      const timers = yield* FiberMap.make<string>()
      const released = yield* PubSub.unbounded<PresenceChange>()

      const release = (key: string) =>
        Effect.suspend(() => {
          if (windows.get(key)?.endedAt === undefined) return Effect.void
          windows.delete(key)
          const change = held.get(key)
          held.delete(key)
          return change === undefined ? Effect.void : PubSub.publish(released, change)
        })

      return CallGuard.of({
        admit: (key, change) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            if (!holdsBack(change.presence, windows.get(key), now, session, graceMillis)) {
              held.delete(key)
              return Effect.succeed(true)
            }
            held.set(key, change)
            return Effect.as(Metric.update(callEchoesHeld, 1), false)
          }),
        released: Stream.fromPubSub(released),
        begin: (key, at) =>
          Effect.andThen(FiberMap.remove(timers, key), Effect.sync(() => void windows.set(key, { since: at }))),
        end: (key, at) =>
          Effect.suspend(() => {
            const window = windows.get(key)
            if (window === undefined) return Effect.void
            windows.set(key, { ...window, endedAt: at })
            return FiberMap.run(timers, key, Effect.andThen(Effect.sleep(graceMillis), release(key)))
          })
      })
    }))
}
