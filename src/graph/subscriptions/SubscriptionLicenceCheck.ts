/**
 * The licence check the subscription manager runs before every presence subscription creation and renewal
 * (protocols.md §2.5: "License Check is made before every presence subscription"). The integrator implements it from
 * the PBX licences; `allowAll` is for tests and for sites without licence enforcement.
 *
 * An answer may be `unknown` (the PBX directory has not loaded, the master is away, a request timed out). Unknown is not
 * unlicensed: a user the subscription already holds stays in it, and nobody is added on an unknown answer.
 */
import { Context, Effect, Layer } from "effect"
import { teamsKey } from "../../domain/TeamsId.ts"

export type LicenceAnswer = "licensed" | "unlicensed" | "unknown"

export class LicenceCheck extends Context.Service<LicenceCheck, {
  /** One answer per id of `userIds`. */
  check(userIds: ReadonlyArray<string>): Effect.Effect<ReadonlyMap<string, LicenceAnswer>>
}>()("teams-presence-connector/graph/subscriptions/LicenceCheck") {
  static readonly allowAll = Layer.succeed(
    LicenceCheck,
    LicenceCheck.of({ check: (userIds) => Effect.succeed(new Map(userIds.map((id) => [id, "licensed" as const]))) })
  )
}

/** Who a subscription holds after a check: the licensed users, and those it held already whose answer is unknown. */
export const permittedUsers = (
  userIds: ReadonlyArray<string>,
  answers: ReadonlyMap<string, LicenceAnswer>,
  held: ReadonlyArray<string>
): ReadonlyArray<string> => {
  const holding = new Set(held.map(teamsKey))
  return userIds.filter((id) => {
    const answer = answers.get(id) ?? "unknown"
    return answer === "licensed" || (answer === "unknown" && holding.has(teamsKey(id)))
  })
}
