/**
 * The current plan, shared: the planner is its only writer; the presence pipeline, the licence check and the status
 * page read it. Also the licence check's request to plan again.
 */
import { Context, Effect, Layer, Queue, SubscriptionRef } from "effect"
import { emptyPlan, type Plan } from "./Plan.ts"

export class PlanState extends Context.Service<PlanState, {
  readonly plan: SubscriptionRef.SubscriptionRef<Plan>
  /** A licence check before a subscription found a served user unlicensed: the planner plans again. */
  readonly licenceChanges: Queue.Queue<void>
}>()("teams-presence-connector/connector/PlanState") {
  static readonly layer = Layer.effect(
    PlanState,
    Effect.gen(function*() {
      return PlanState.of({ plan: yield* SubscriptionRef.make(emptyPlan), licenceChanges: yield* Queue.sliding<void>(1) })
    })
  )
}
