/**
 * Settings of the PBX side: the App object password, which PBX is the master, the contact the connector writes
 * presence under, how users are licensed, and the websocket path and timeouts.
 */
import { Context, Layer, Redacted } from "effect"
import { type BackoffPolicy, defaultBackoffPolicy } from "../domain/LoginBackoff.ts"

/**
 * Which PBX users the connector serves (docs/pbx-setup.md, "Licences"): `appRight` — the user's `apps` column grants
 * the App object; `appLicence` — the PBX confirms an `App(<licenceName>)` licence for the user (PbxAdminApi
 * CheckAppLic); `all` — every matched user.
 */
export type LicensingMode = "appRight" | "appLicence" | "all"

/** An optional cap on the served users: a number, or the master App object's service licences (`info.lics`). */
export type MaxUsers = number | "serviceLicences"

export interface PbxSettingsOptions {
  /** The App object's password (the same on the master and every slave). */
  readonly appPassword: Redacted.Redacted<string>
  /** The master PBX's name, as it appears in AppLogin `info.pbx`. */
  readonly masterPbx: string
  /** The presence contact the connector writes under (protocols.md §2.4); never `tel:`. */
  readonly contact: string
  /** The websocket path on the connector's HTTP server that the App object's URL points at. */
  readonly path: string
  /** The name looked for in users' `apps` column; default: the master's App object name from its AppLogin. */
  readonly appName?: string | undefined
  readonly licensing: LicensingMode
  /** `appLicence`: the licence asked for is `App(<licenceName>)`; default: the app name above. */
  readonly licenceName?: string | undefined
  /** Serve at most this many users (the first by PBX guid); no cap by default. */
  readonly maxUsers?: MaxUsers | undefined
  /** `appLicence`: CheckAppLic requests in flight at once during a licence pass. */
  readonly licenceCheckConcurrency: number
  readonly requestTimeoutMs: number
  readonly loginTimeoutMs: number
  /** Idle seconds before the operating system starts TCP keep-alive probes on a PBX connection. */
  readonly keepAliveSeconds: number
  /**
   * The largest frame (or fragmented message) a logged-in PBX may send. The largest real replication row seen is under
   * 1 KiB (test/fixtures/conformance/innovaphone-captures.json); the default leaves room for 250 times that.
   */
  readonly maxFrameBytes: number
  /** Before AppLogin succeeds: the largest frame (a real AppLogin is about 400 bytes) … */
  readonly loginFrameBytes: number
  /** … how many frames, and how many bytes in all, the peer may send. */
  readonly maxFramesBeforeLogin: number
  readonly loginBytes: number
  /** Per-address backoff for failed logins. */
  readonly loginBackoff: BackoffPolicy
}

export const defaultPbxSettings = {
  contact: "teams:",
  path: "/pbx",
  licensing: "appRight",
  licenceCheckConcurrency: 16,
  requestTimeoutMs: 10_000,
  loginTimeoutMs: 10_000,
  keepAliveSeconds: 60,
  maxFrameBytes: 256 * 1024,
  loginFrameBytes: 4 * 1024,
  maxFramesBeforeLogin: 16,
  loginBytes: 16 * 1024,
  loginBackoff: defaultBackoffPolicy
} as const

/** Fills in the defaults for everything but the password and the master's name. */
export const makePbxSettings = (
  options: Pick<PbxSettingsOptions, "appPassword" | "masterPbx"> & Partial<PbxSettingsOptions>
): PbxSettingsOptions => ({ ...defaultPbxSettings, ...options })

export class PbxSettings extends Context.Service<PbxSettings, PbxSettingsOptions>()("teams-presence-connector/pbx/PbxSettings") {
  static readonly layer = (options: PbxSettingsOptions): Layer.Layer<PbxSettings> => Layer.succeed(PbxSettings, options)
}
