/**
 * How Graph combines a user's presence sessions (docs/protocol-notes.md, "PBX → Teams"): every Teams client and every
 * application that called setPresence holds a session; the user's presence is the strongest session —
 * DoNotDisturb > Busy > Available > Away — unless the user picked a status by hand (a preferred presence), which wins
 * over all sessions while at least one session exists. Without any session the user is Offline. Pure functions: the
 * simulator's state (SimUsers) keeps the inputs and asks here what Graph would show.
 */

/** A session an application set with setPresence. */
export interface AppSession {
  readonly availability: string
  readonly activity: string
  /** Clock milliseconds of the last setPresence (the Available timeout counts from here). */
  readonly setAt: number
  readonly expiresAt: number
}

/** A status picked by hand (Teams client or setUserPreferredPresence). */
export interface PreferredPresence {
  readonly availability: string
  readonly activity: string
  readonly expiresAt: number
}

export interface PresenceInputs {
  /** The user's Teams clients, as the control API sets them; Offline means no client session. */
  readonly client: { readonly availability: string; readonly activity: string }
  readonly sessions: ReadonlyMap<string, AppSession>
  readonly preferred: PreferredPresence | undefined
}

/** The documented setPresence pairs (Learn presence-setpresence.md). */
export const sessionPairs: ReadonlyArray<readonly [string, string]> = [
  ["Available", "Available"],
  ["Busy", "InACall"],
  ["Busy", "InAConferenceCall"],
  ["Away", "Away"],
  ["DoNotDisturb", "Presenting"]
]

/** The documented setUserPreferredPresence pairs (Learn presence-setuserpreferredpresence.md). */
export const preferredPairs: ReadonlyArray<readonly [string, string]> = [
  ["Available", "Available"],
  ["Busy", "Busy"],
  ["DoNotDisturb", "DoNotDisturb"],
  ["BeRightBack", "BeRightBack"],
  ["Away", "Away"],
  ["Offline", "OffWork"]
]

/** The documented pair matching `availability`/`activity` (case-insensitively), in its documented spelling. */
export const findPair = (
  pairs: ReadonlyArray<readonly [string, string]>,
  availability: string,
  activity: string
): readonly [string, string] | undefined =>
  pairs.find(([a, b]) => a.toLowerCase() === availability.toLowerCase() && b.toLowerCase() === activity.toLowerCase())

/** setPresence accepts PT5M to PT4H, default 5 minutes. */
export const sessionExpiryRange = { minMillis: 5 * 60_000, maxMillis: 240 * 60_000, defaultMillis: 5 * 60_000 } as const

/** setUserPreferredPresence's defaults: DoNotDisturb and Busy for one day, the others for seven. */
export const preferredDefaultMillis = (availability: string): number =>
  availability === "DoNotDisturb" || availability === "Busy" ? 24 * 3600_000 : 7 * 24 * 3600_000

/** An ISO 8601 duration of hours, minutes and seconds ("PT1H30M", "PT5M", "P1D") in milliseconds; undefined if not one. */
export const parseDuration = (text: string): number | undefined => {
  const match = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(text.trim())
  if (match === null || text.trim() === "P" || text.trim().endsWith("T")) return undefined
  const [, days = "0", hours = "0", minutes = "0", seconds = "0"] = match
  return ((Number(days) * 24 + Number(hours)) * 60 + Number(minutes)) * 60_000 + Number(seconds) * 1000
}

/** An Available session not refreshed for five minutes fades: AvailableInactive, then Away five minutes later. */
const availableTimeoutMillis = 5 * 60_000

/** What a live application session shows now. */
export const sessionShows = (session: AppSession, now: number): { readonly availability: string; readonly activity: string } => {
  if (session.availability !== "Available") return session
  const idle = now - session.setAt
  if (idle >= 2 * availableTimeoutMillis) return { availability: "Away", activity: "Away" }
  if (idle >= availableTimeoutMillis) return { availability: "Available", activity: "AvailableInactive" }
  return session
}

/** The rank of an availability among sessions: DoNotDisturb > Busy > Available > Away; 0 = no session. */
export const rank = (availability: string): number => {
  switch (availability.toLowerCase()) {
    case "donotdisturb":
      return 4
    case "busy":
    case "busyidle":
      return 3
    case "available":
    case "availableidle":
      return 2
    case "away":
    case "berightback":
      return 1
    default:
      return 0
  }
}

/** Sessions still alive at `now`. */
export const liveSessions = (sessions: ReadonlyMap<string, AppSession>, now: number): Map<string, AppSession> =>
  new Map([...sessions].filter(([, session]) => session.expiresAt > now))

/**
 * What Graph shows for the user at `now`. The client counts as a session unless it is Offline (or unknown); a
 * preferred presence shows while any session exists; otherwise the strongest session, the client winning a tie.
 */
export const aggregate = (inputs: PresenceInputs, now: number): { readonly availability: string; readonly activity: string } => {
  const clientOnline = rank(inputs.client.availability) > 0
  const sessions = [...liveSessions(inputs.sessions, now).values()].map((session) => sessionShows(session, now))
  const preferred = inputs.preferred !== undefined && inputs.preferred.expiresAt > now ? inputs.preferred : undefined
  if (sessions.length === 0) return preferred !== undefined && clientOnline ? preferred : inputs.client
  if (preferred !== undefined) return { availability: preferred.availability, activity: preferred.activity }
  let best = clientOnline ? inputs.client : sessions[0]!
  for (const session of sessions) if (rank(session.availability) > rank(best.availability)) best = session
  return { availability: best.availability, activity: best.activity }
}
