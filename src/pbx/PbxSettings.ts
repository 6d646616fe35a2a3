/**
 * Settings of the PBX side: the App object password, which PBX is the master, the contact the connector writes
 * presence under, and the websocket path and timeouts.
 */
import { Context, Layer, Redacted } from "effect"

export interface PbxSettingsOptions {
  /** The App object's password (the same on the master and every slave). */
  readonly appPassword: Redacted.Redacted<string>
  /** The master PBX's name, as it appears in AppLogin `info.pbx`. */
  readonly masterPbx: string
  /** The presence contact the connector writes under (protocols.md §2.4); never `tel:`. */
  readonly contact: string
  /** The websocket path on the connector's HTTP server that the App object's URL points at. */
  readonly path: string
  /** The name looked for in users' `apps` column (licences); default: the master's App object name from its AppLogin. */
  readonly appName?: string | undefined
  readonly requestTimeoutMs: number
  readonly loginTimeoutMs: number
  readonly keepAliveSeconds: number
}

export const defaultPbxSettings = {
  contact: "teams:",
  path: "/pbx",
  requestTimeoutMs: 10_000,
  loginTimeoutMs: 10_000,
  keepAliveSeconds: 60
} as const

/** Fills in the defaults for everything but the password and the master's name. */
export const makePbxSettings = (
  options: Pick<PbxSettingsOptions, "appPassword" | "masterPbx"> & Partial<PbxSettingsOptions>
): PbxSettingsOptions => ({ ...defaultPbxSettings, ...options })

export class PbxSettings extends Context.Service<PbxSettings, PbxSettingsOptions>()("presence-connector/pbx/PbxSettings") {
  static readonly layer = (options: PbxSettingsOptions): Layer.Layer<PbxSettings> => Layer.succeed(PbxSettings, options)
}
