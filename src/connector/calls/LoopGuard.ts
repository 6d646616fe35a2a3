/**
 * The loop guard between the two directions, as a pure decision. While the connector's own session makes a user
 * "in a call" in Teams (from the PBX call's start until a grace period after its end), a Teams presence that shows no
 * more than that session — its availability with its activity, or with the availability repeated (Busy/Busy) — is
 * the PBX's own call coming back. It must not be written to the PBX: the PBX already knows the user is on the phone,
 * and writing it would keep the call alive in both systems. Anything else the user does in Teams passes.
 */
import { type GraphPresence, isUnknown } from "../../domain/Presence.ts"

export interface OwnSession {
  readonly availability: string
  readonly activity: string
}

/** A user's PBX call as the guard sees it: when the connector began to show it, and when it ended. */
export interface GuardWindow {
  readonly since: number
  readonly endedAt?: number | undefined
}

const text = (value: GraphPresence["availability"]): string => (isUnknown(value) ? value.raw : value).toLowerCase()

/** Whether `presence` shows no more than the connector's own session. */
export const showsOwnSession = (presence: GraphPresence, session: OwnSession): boolean => {
  const availability = text(presence.availability)
  const activity = text(presence.activity)
  return availability === session.availability.toLowerCase() &&
    (activity === session.activity.toLowerCase() || activity === session.availability.toLowerCase())
}

/** Whether the window covers `now`: the call is on, or ended less than `graceMillis` ago. */
export const windowOpen = (window: GuardWindow | undefined, now: number, graceMillis: number): boolean =>
  window !== undefined && (window.endedAt === undefined || now - window.endedAt < graceMillis)

/** True when the presence must not reach the PBX. */
export const holdsBack = (
  presence: GraphPresence,
  window: GuardWindow | undefined,
  now: number,
  session: OwnSession,
  graceMillis: number
): boolean => windowOpen(window, now, graceMillis) && showsOwnSession(presence, session)
