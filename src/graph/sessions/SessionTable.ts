/**
 * The presence sessions the connector holds or wants, per Teams user, and the one decision taken on them: what, if
 * anything, to send to Graph for a user now. Pure: the writer (PresenceSessions) does the IO.
 *
 * A user is `set` (in a call: the session must exist and be refreshed before it expires), `clear` (no session wanted:
 * end the one the connector holds) or `held` (a session stored by an earlier run, kept until the PBX says whether the
 * user is still in a call, or until the start-up wait has passed).
 */

export type Desired = "set" | "clear" | "held"

export interface SessionEntry {
  readonly desired: Desired
  /** Graph holds the connector's session for the user, as far as the connector knows. */
  readonly active: boolean
  /** Clock milliseconds of the last setPresence Graph accepted. */
  readonly setAt?: number | undefined
  /** Failed attempts since the last success or change. */
  readonly failures: number
  readonly lastError?: string | undefined
}

export type Action = "setPresence" | "clearPresence" | "none"

/** What to send for `entry` now: a first set or a refresh due, a clear of a session still held, or nothing. */
export const actionOf = (entry: SessionEntry | undefined, now: number, refreshMillis: number): Action => {
  if (entry === undefined) return "none"
  switch (entry.desired) {
    case "set":
      return !entry.active || entry.setAt === undefined || now - entry.setAt >= refreshMillis ? "setPresence" : "none"
    case "clear":
      return entry.active ? "clearPresence" : "none"
    case "held":
      return "none"
  }
}

/** The entry after the user's call state is known: a new wish resets the failure count. */
export const want = (entry: SessionEntry | undefined, inCall: boolean): SessionEntry => {
  const desired: Desired = inCall ? "set" : "clear"
  if (entry === undefined) return { desired, active: false, failures: 0 }
  return entry.desired === desired ? entry : { ...entry, desired, failures: 0, lastError: undefined }
}

/** The entry after Graph accepted `action` at `now`. */
export const succeeded = (entry: SessionEntry, action: Action, now: number): SessionEntry =>
  action === "setPresence"
    ? { ...entry, active: true, setAt: now, failures: 0, lastError: undefined }
    : { ...entry, active: false, setAt: undefined, failures: 0, lastError: undefined }

export const failed = (entry: SessionEntry, message: string): SessionEntry => ({
  ...entry,
  failures: entry.failures + 1,
  lastError: message
})

/** An entry that needs nothing more and holds nothing can be forgotten. */
export const settled = (entry: SessionEntry): boolean => entry.desired === "clear" && !entry.active

/** Backoff after a failed write: 2 s doubling to 60 s, never before Graph's Retry-After. */
export const retryDelay = (failures: number, retryAfterMillis: number | undefined): number =>
  Math.max(retryAfterMillis ?? 0, Math.min(60_000, 2_000 * 2 ** Math.max(0, failures - 1)))

/** The ISO 8601 duration Graph takes as expirationDuration (PT5M … PT4H). */
export const expirationDuration = (minutes: number): string =>
  minutes % 60 === 0 ? `PT${minutes / 60}H` : minutes > 60 ? `PT${Math.floor(minutes / 60)}H${minutes % 60}M` : `PT${minutes}M`
