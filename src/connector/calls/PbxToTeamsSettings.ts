/**
 * Settings of the PBX → Teams direction (`pbxToTeams` in the configuration, off by default): how calls are seen on
 * the PBX, which Teams presence a call shows, how often it is refreshed, which users take part, and which Graph
 * application writes.
 */
import type { AppCredential } from "../../graph/client/GraphSettings.ts"
import type { CallSource } from "../../pbx/calls/WatchProtocol.ts"

/** The setPresence pairs that say "in a call" (Learn presence-setpresence.md lists these among its five pairs). */
export const inCallPairs = ["Busy/InACall", "Busy/InAConferenceCall", "DoNotDisturb/Presenting"] as const
export type InCallPair = typeof inCallPairs[number]

export interface PbxToTeamsSettings {
  readonly source: CallSource
  /** rcc: a ringing call counts too. */
  readonly ringing: boolean
  /** rcc: a call on hold still counts. */
  readonly hold: boolean
  readonly availability: string
  readonly activity: string
  readonly expirationMinutes: number
  readonly refreshMillis: number
  /** A call must last this long before Teams shows it (0: at once). */
  readonly debounceMillis: number
  /** After a call, Teams notifications that only show the connector's own session are not written to the PBX for this long. */
  readonly graceMillis: number
  /** Only members of this PBX group; all served users when undefined. */
  readonly group?: string | undefined
  readonly clearOnShutdown: boolean
  /** Who writes: the connector's own application, or a separate app registration with its own credential. */
  readonly writer:
    | { readonly _tag: "Shared" }
    | { readonly _tag: "Separate"; readonly clientId: string; readonly credential: AppCredential }
  /** setPresence / clearPresence requests in flight at once. */
  readonly concurrency: number
  /** Sessions stored by the last run are cleared after this long unless their user is in a call by then. */
  readonly startupHoldMillis: number
}

export const defaultPbxToTeamsSettings: PbxToTeamsSettings = {
  source: "presence",
  ringing: false,
  hold: true,
  availability: "Busy",
  activity: "InACall",
  expirationMinutes: 5,
  refreshMillis: 240_000,
  debounceMillis: 0,
  graceMillis: 60_000,
  clearOnShutdown: true,
  writer: { _tag: "Shared" },
  concurrency: 64,
  startupHoldMillis: 30_000
}

export const splitPair = (pair: InCallPair): { readonly availability: string; readonly activity: string } => {
  const [availability, activity] = pair.split("/") as [string, string]
  return { availability, activity }
}
