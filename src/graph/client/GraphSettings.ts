/**
 * Plain typed options for everything that talks to Microsoft Graph and the identity platform.
 * The integrator maps the configuration file onto them; nothing here reads files or the environment.
 */
import { Context, type Redacted } from "effect"

export type AppCredential =
  | { readonly _tag: "ClientSecret"; readonly secret: Redacted.Redacted<string> }
  | { readonly _tag: "Certificate"; readonly certificatePem: string; readonly privateKeyPem: Redacted.Redacted<string> }

export interface DelegatedAccount {
  /** Account key used in the configuration, the CLI (`login --account <name>`) and the status page. */
  readonly name: string
  /** UPN of the technical user. */
  readonly username: string
  readonly flow: "password" | "deviceCode"
  /** Password flow only. */
  readonly password?: Redacted.Redacted<string> | undefined
}

export interface GraphSettings {
  readonly tenantId: string
  readonly clientId: string
  /** Default "https://login.microsoftonline.com". */
  readonly loginBaseUrl: string
  /** Default "https://graph.microsoft.com". */
  readonly graphBaseUrl: string
  readonly app?: AppCredential | undefined
  readonly accounts: ReadonlyArray<DelegatedAccount>
  /** Refresh tokens this long before they expire (default 300). */
  readonly refreshAheadSeconds?: number
}

export const defaultLoginBaseUrl = "https://login.microsoftonline.com"
export const defaultGraphBaseUrl = "https://graph.microsoft.com"
export const defaultRefreshAheadSeconds = 300

export class GraphConfig extends Context.Service<GraphConfig, GraphSettings>()("teams-presence-connector/graph/client/GraphConfig") {}

export type CredentialRef = { readonly _tag: "App" } | { readonly _tag: "Account"; readonly name: string }

export const AppCredentialRef: CredentialRef = { _tag: "App" }
export const accountRef = (name: string): CredentialRef => ({ _tag: "Account", name })

/** A stable key for maps and logs, e.g. "app" or "account:presence-1". */
export const credentialKey = (credential: CredentialRef): string =>
  credential._tag === "App" ? "app" : `account:${credential.name}`

/**
 * Microsoft Graph's root in each cloud; a scope names Graph by the root of its own cloud (Learn: graph/deployments,
 * graph/sdks/national-clouds).
 */
export const graphCloudHosts: ReadonlyArray<string> = [
  "graph.microsoft.com",
  "graph.microsoft.us",
  "dod-graph.microsoft.us",
  "microsoftgraph.chinacloudapi.cn"
]

/**
 * The `.default` scope of Microsoft Graph: `https://<cloud root>/.default` when `graphBaseUrl` is a Graph cloud, else
 * (a proxy, a simulator) the public cloud's `https://graph.microsoft.com/.default` — the resource stays Graph whatever
 * address it is reached at.
 */
export const graphScope = (settings: GraphSettings): string => {
  const host = parseHost(settings.graphBaseUrl)
  return host !== undefined && graphCloudHosts.includes(host) ? `https://${host}/.default` : `${defaultGraphBaseUrl}/.default`
}

const parseHost = (url: string): string | undefined => {
  try {
    return new URL(url).hostname.toLowerCase()
  } catch {
    return undefined
  }
}

export const trimSlash = (url: string): string => url.replace(/\/+$/, "")

export const tokenUrl = (settings: GraphSettings): string =>
  `${trimSlash(settings.loginBaseUrl)}/${encodeURIComponent(settings.tenantId)}/oauth2/v2.0/token`

export const deviceCodeUrl = (settings: GraphSettings): string =>
  `${trimSlash(settings.loginBaseUrl)}/${encodeURIComponent(settings.tenantId)}/oauth2/v2.0/devicecode`
