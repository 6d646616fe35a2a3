/**
 * Where a tenant's PBX websockets are served in a cluster (docs/scaling.md, "PBX sockets: per tenant"): the one
 * decision, used by the runner's front (its PBX side or a pipe to the owner), the tenant's work on its owner (which
 * directory, whether its connector sends its own PBX writes) and the runners' status rows.
 *
 * - `any`: on the runner the PBX reaches (its PBX side, PbxSide.ts); the owner's connector holds no PBX socket.
 * - `owner`: piped to the tenant's owner and held by its connector, as in one process.
 *
 * A tenant needs `owner` when a feature of its configuration reads the PBX connections in its connector: PBX → Teams
 * call watching (`pbxToTeams.enabled`) and `pbx.licensing: appLicence` (CheckAppLic on the master's connection).
 */
import type { LicensingMode } from "../pbx/PbxSettings.ts"

/** Where one tenant's PBX sockets are served. */
export type SocketMode = "any" | "owner"

/**
 * The runner setting `CONNECTOR_CLUSTER_PBX_SOCKETS`: `auto` (the default) decides per tenant; `owner` serves every
 * tenant's sockets in its owner's connector; `any` is read as `auto` (its former meaning, sockets on any runner, stays
 * for every tenant that does not need its owner).
 */
export type PbxSocketsSetting = "auto" | "any" | "owner"

/** What of a tenant's settings the decision reads (ConnectorSettings has both). */
export interface SocketNeeds {
  /** Present when PBX → Teams call watching is enabled. */
  readonly pbxToTeams?: unknown
  readonly pbx: { readonly licensing: LicensingMode }
}

export interface SocketDecision {
  readonly mode: SocketMode
  /** Why, for the tenant's start log. */
  readonly why: string
}

export const socketModeOf = (tenant: SocketNeeds, setting: PbxSocketsSetting): SocketDecision => {
  if (setting === "owner") return { mode: "owner", why: "CONNECTOR_CLUSTER_PBX_SOCKETS=owner" }
  const needs = [
    ...(tenant.pbxToTeams !== undefined ? ["pbxToTeams is enabled (call watching)"] : []),
    ...(tenant.pbx.licensing === "appLicence" ? ["pbx.licensing is appLicence"] : [])
  ]
  return needs.length > 0
    ? { mode: "owner", why: `${needs.join(" and ")}: it needs the PBX sockets in the owner's connector` }
    : { mode: "any", why: "nothing in its configuration needs the PBX sockets in the owner's connector" }
}
