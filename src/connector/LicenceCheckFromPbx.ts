/**
 * The licence check the subscription manager runs before every presence subscription: a fresh licence pass over the
 * plan's users (for `appLicence` a CheckAppLic each). Before the first plan — the master has not logged in, the
 * directory has not loaded — every answer is unknown, so a stored subscription is kept, never deleted. A served user
 * found unlicensed leaves the subscription now, and the planner plans again (which stops writing their presence).
 */
import { Effect, Layer, Queue, SubscriptionRef } from "effect"
import { teamsKey } from "../domain/TeamsId.ts"
import { type LicenceAnswer, LicenceCheck } from "../graph/subscriptions/SubscriptionLicenceCheck.ts"
import { Licences, type Verdict } from "../pbx/directory/Licences.ts"
import { PlanState } from "./PlanState.ts"

const answerOf = (verdict: Verdict | undefined): LicenceAnswer =>
  verdict === undefined || verdict._tag === "Unknown" ? "unknown" : verdict._tag === "Licensed" ? "licensed" : "unlicensed"

export const LicenceCheckFromPbx = Layer.effect(
  LicenceCheck,
  Effect.gen(function*() {
    const licences = yield* Licences
    const state = yield* PlanState
    return LicenceCheck.of({
      check: Effect.fnUntraced(function*(userIds) {
        const plan = yield* SubscriptionRef.get(state.plan)
        if (!plan.ready) return new Map(userIds.map((id) => [id, "unknown" as const]))
        const served = userIds.flatMap((id) => {
          const synced = plan.byTeamsId.get(teamsKey(id))
          return synced === undefined ? [] : [synced]
        })
        const pass = yield* licences.assess(served.map((s) => s.pbx))
        const answers = new Map<string, LicenceAnswer>(userIds.map((id) => [id, "unlicensed"]))
        const revoked: Array<string> = []
        for (const synced of served) {
          const verdict = pass.verdicts.get(synced.pbx.guid)
          answers.set(synced.teams.id, answerOf(verdict))
          if (verdict?._tag === "Unlicensed") revoked.push(`${synced.pbx.h323}: ${verdict.reason}`)
        }
        if (revoked.length > 0) {
          yield* Effect.logWarning(
            `licence check: ${revoked.length} of ${served.length} served users no longer hold a licence and leave the ` +
              `presence subscription (${revoked.slice(0, 3).join("; ")}${revoked.length > 3 ? "; …" : ""})`
          )
          yield* Queue.offer(state.licenceChanges, undefined)
        }
        return answers
      })
    })
  })
)
