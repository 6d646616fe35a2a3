/**
 * The licence check the subscription manager runs before every presence subscription creation and renewal
 * (protocols.md §2.5: "License Check is made before every presence subscription"). The integrator implements it from
 * the PBX licences; `allowAll` is for tests and for sites without licence enforcement.
 */
import { Context, Effect, Layer } from "effect"

export class LicenceCheck extends Context.Service<LicenceCheck, {
  /** Returns the permitted subset of `userIds`, in their order. */
  check(userIds: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<string>>
}>()("presence-connector/graph/LicenceCheck") {
  static readonly allowAll = Layer.succeed(LicenceCheck, LicenceCheck.of({ check: (userIds) => Effect.succeed(userIds) }))
}
