/**
 * The PBX → Teams direction on the status board, once a second: its light (with the reason and what to do) and who
 * is in a PBX call since when. Every change of the light's colour is logged once with its reason.
 */
import { Clock, Effect, Layer, SubscriptionRef } from "effect"
import type { SessionsHealth } from "../../graph/sessions/PresenceSessions.ts"
import { PresenceSessions } from "../../graph/sessions/PresenceSessions.ts"
import { CallWatch, type UserWatch } from "../../pbx/calls/CallWatch.ts"
import type { CallSource } from "../../pbx/calls/WatchProtocol.ts"
import { type Light, StatusBoard } from "../../status/StatusBoard.ts"
import { CallJoin } from "./CallJoin.ts"

/** Writes failing for longer than this (or refused as not permitted) turn the light red. */
export const writesRedAfterMillis = 5 * 60_000

const permissionFix = "Grant the app registration the application permission Presence.ReadWrite.All with admin consent (docs/pbx-to-teams.md)"

/** The light of the PBX → Teams direction. Pure. */
export const pbxToTeamsLight = (input: {
  readonly source: CallSource
  readonly missingApi: ReadonlyArray<string>
  readonly watches: ReadonlyArray<UserWatch>
  readonly health: SessionsHealth
  readonly inCall: number
  readonly now: number
}): Light => {
  const api = input.source === "rcc" ? "RCC" : "PbxApi"
  if (input.missingApi.length > 0) {
    return {
      state: "red",
      reason: `the App object on ${input.missingApi.join(", ")} does not enable ${api}: calls cannot be watched there`,
      fix: `Set the checkmark ${api} on the App object of ${input.missingApi.join(", ")}`
    }
  }
  const failing = input.health.failing
  if (failing !== undefined) {
    const denied = failing.status === 401 || failing.status === 403
    const red = denied || input.now - failing.since >= writesRedAfterMillis
    return {
      state: red ? "red" : "amber",
      reason: `writing Teams presences fails for ${input.health.retrying} users: ${failing.message}`,
      fix: denied ? permissionFix : "Graph throttles or is unavailable; the writes are retried (connector_teams_presence_writes_total)"
    }
  }
  const refused = input.watches.filter((w) => w.status === "refused")
  if (refused.length > 0) {
    return {
      state: "amber",
      reason: `the PBX refused to watch ${refused.length} users (${refused[0]!.user.h323}: ${refused[0]!.reason ?? "refused"})`,
      fix: input.source === "rcc"
        ? "The users must have the App on their Apps tab (RCC sees only users with access to the App object)"
        : "Give the App object the Visibility rights Presence and On the phone for these users (docs/pbx-to-teams.md)"
    }
  }
  if (input.watches.length === 0) {
    return {
      state: "amber",
      reason: "no served user to watch yet",
      fix: "Users are watched once they are matched and licensed (and in pbxToTeams.group, if set)"
    }
  }
  const waiting = input.watches.filter((w) => w.status === "waiting")
  if (waiting.length > 0) return { state: "amber", reason: `${waiting.length} users wait for their PBX to connect` }
  const live = input.watches.filter((w) => w.status === "live").length
  return {
    state: "green",
    reason: `watching the calls of ${live} of ${input.watches.length} users (${input.source}); ${input.inCall} in a PBX call` +
      (input.health.waiting > 0 ? `, ${input.health.waiting} Teams writes queued` : "")
  }
}

export const PbxToTeamsStatusLayer = (source: CallSource) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const board = yield* StatusBoard
    const watch = yield* CallWatch
    const sessions = yield* PresenceSessions
    const join = yield* CallJoin
    let lastColour: string | undefined

    const project = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const watches = yield* watch.current
      const calls = yield* join.calls
      const health = yield* sessions.health
      const active = yield* SubscriptionRef.get(sessions.activeUsers)
      const light = pbxToTeamsLight({ source, missingApi: yield* SubscriptionRef.get(watch.missingApi), watches, health, inCall: calls.length, now })
      yield* board.update((snapshot) => ({
        ...snapshot,
        pbxToTeams: {
          light,
          source,
          watched: watches.length,
          live: watches.filter((w) => w.status === "live").length,
          calls: calls.map((call) => ({ teamsId: call.teamsId, since: call.since, shown: call.shown })),
          sessions: active.size
        }
      }))
      if (light.state !== lastColour) {
        const line = `light pbxToTeams is ${light.state}: ${light.reason}`
        const log = light.state === "green" || lastColour === undefined ? Effect.logInfo(line) : Effect.logWarning(line)
        yield* log.pipe(Effect.annotateLogs({ light: "pbxToTeams", state: light.state, ...(light.fix !== undefined ? { fix: light.fix } : {}) }))
        lastColour = light.state
      }
    })

    yield* Effect.gen(function*() {
      while (true) {
        yield* project.pipe(Effect.catchCause((cause) => Effect.logError("PBX → Teams status projection failed", cause)))
        yield* Effect.sleep("1 second")
      }
    }).pipe(Effect.forkScoped)
  }))
