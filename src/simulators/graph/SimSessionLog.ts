/** The record of the presence writes the Graph simulator received (PresenceSessionRoutes), for tests and the control API. */
import { Effect, PubSub } from "effect"

/** One presence write as the simulator received it. */
export interface SessionCall {
  readonly at: number
  readonly operation: "setPresence" | "clearPresence" | "setUserPreferredPresence" | "clearUserPreferredPresence"
  readonly userId: string
  readonly appId: string
  readonly sessionId?: string | undefined
  readonly availability?: string | undefined
  readonly activity?: string | undefined
  readonly expirationDuration?: string | undefined
  /** The HTTP status answered. */
  readonly status: number
}

export interface SimSessionLog {
  readonly sessionLog: Array<SessionCall>
  /** Every recorded call, for tests that wait for one. */
  readonly sessionCalls: PubSub.PubSub<SessionCall>
}

export const makeSimSessionLog = Effect.fnUntraced(function*() {
  return { sessionLog: [], sessionCalls: yield* PubSub.unbounded<SessionCall>() } satisfies SimSessionLog
})
