/**
 * How the simulated identity platform reads the `scope` parameter, as Microsoft Learn describes it (scopes-oidc.md):
 * `{resource}/.default` or `{resource}/{Permission}` (a permission without a resource means Microsoft Graph), the OIDC
 * scopes `openid profile email offline_access` in any order and case, and what a token answer echoes. Pure: the token
 * routes turn a `ScopeProblem` into the platform's error body. The simulated tenant knows one resource, Microsoft Graph.
 */

/** Microsoft Graph's application ID URI and its application id; both name the resource in a scope. */
export const GRAPH_RESOURCE = "https://graph.microsoft.com"
export const GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"

/**
 * The delegated Graph permissions the simulated tenant has consented for the app (the connector's two, plus User.Read
 * that every registration starts with). Tokens carry all of them, as a real token carries every consented permission.
 */
export const consentedDelegatedPermissions: ReadonlyArray<string> = ["Presence.Read.All", "User.Read", "User.Read.All"]

export type OidcScope = "openid" | "profile" | "email" | "offline_access"
const oidcScopes: ReadonlyArray<OidcScope> = ["openid", "profile", "email", "offline_access"]

/** A delegated request the platform accepts. */
export interface DelegatedScopes {
  readonly oidc: ReadonlySet<OidcScope>
  /** `https://graph.microsoft.com/.default` was asked for (it is echoed back). */
  readonly graphDefault: boolean
  /** Named Graph permissions asked for, in Microsoft's spelling. */
  readonly permissions: ReadonlyArray<string>
}

export type ScopeProblem =
  /** AADSTS900144: no scope at all. */
  | { readonly _tag: "Missing" }
  /** AADSTS500011: a resource the tenant does not know. */
  | { readonly _tag: "UnknownResource"; readonly resource: string }
  /** AADSTS70011: `.default` together with named permissions (static and dynamic consent in one request). */
  | { readonly _tag: "MixedDefault"; readonly scope: string }
  /** AADSTS65001: a named permission nobody consented to. */
  | { readonly _tag: "NotConsented"; readonly permissions: ReadonlyArray<string> }
  /** AADSTS1002012: client credentials with anything but `{resource}/.default`. */
  | { readonly _tag: "ClientCredentialsNeedDefault"; readonly scope: string }

export type ScopeResult<A> = { readonly _tag: "Ok"; readonly value: A } | { readonly _tag: "Problem"; readonly problem: ScopeProblem }

const ok = <A>(value: A): ScopeResult<A> => ({ _tag: "Ok", value })
const problem = (value: ScopeProblem): ScopeResult<never> => ({ _tag: "Problem", problem: value })

type Part =
  | { readonly _tag: "Oidc"; readonly scope: OidcScope }
  | { readonly _tag: "Default"; readonly raw: string }
  | { readonly _tag: "Permission"; readonly raw: string; readonly name: string }
  | { readonly _tag: "Unknown"; readonly resource: string }

const isGraph = (resource: string): boolean => {
  const normalized = resource.replace(/\/+$/, "").toLowerCase()
  return normalized === GRAPH_RESOURCE || normalized === GRAPH_APP_ID
}

const classify = (raw: string): Part => {
  const lower = raw.toLowerCase()
  const oidc = oidcScopes.find((scope) => scope === lower)
  if (oidc !== undefined) return { _tag: "Oidc", scope: oidc }
  const slash = raw.lastIndexOf("/")
  // Without a resource the permission is Microsoft Graph's (scopes-oidc.md).
  const resource = slash < 0 ? GRAPH_RESOURCE : raw.slice(0, slash)
  const name = slash < 0 ? raw : raw.slice(slash + 1)
  if (!isGraph(resource)) return { _tag: "Unknown", resource }
  return name.toLowerCase() === ".default" ? { _tag: "Default", raw } : { _tag: "Permission", raw, name }
}

const split = (scope: string | undefined): ReadonlyArray<string> => (scope ?? "").split(/\s+/).filter((part) => part.length > 0)

const firstUnknown = (parts: ReadonlyArray<Part>) =>
  parts.find((part): part is Extract<Part, { _tag: "Unknown" }> => part._tag === "Unknown")

/** A delegated request (password, device code, refresh): what it asks for, or why the platform refuses it. */
export const parseDelegated = (scope: string | undefined): ScopeResult<DelegatedScopes> => {
  const raw = split(scope)
  if (raw.length === 0) return problem({ _tag: "Missing" })
  const parts = raw.map(classify)
  const unknown = firstUnknown(parts)
  if (unknown !== undefined) return problem({ _tag: "UnknownResource", resource: unknown.resource })
  const graphDefault = parts.some((part) => part._tag === "Default")
  const named = parts.flatMap((part) => (part._tag === "Permission" ? [part.name] : []))
  if (graphDefault && named.length > 0) return problem({ _tag: "MixedDefault", scope: raw.join(" ") })
  const permissions: Array<string> = []
  const missing: Array<string> = []
  for (const name of named) {
    const consented = consentedDelegatedPermissions.find((permission) => permission.toLowerCase() === name.toLowerCase())
    if (consented === undefined) missing.push(name)
    else if (!permissions.includes(consented)) permissions.push(consented)
  }
  if (missing.length > 0) return problem({ _tag: "NotConsented", permissions: missing })
  const oidc = new Set(parts.flatMap((part) => (part._tag === "Oidc" ? [part.scope] : [])))
  return ok({ oidc, graphDefault, permissions })
}

/** A client-credentials request: exactly `{resource}/.default` (scopes-oidc.md, "Client credentials grant flow"). */
export const parseClientCredentials = (scope: string | undefined): ScopeResult<void> => {
  const raw = split(scope)
  if (raw.length === 0) return problem({ _tag: "Missing" })
  const parts = raw.map(classify)
  const unknown = firstUnknown(parts)
  if (unknown !== undefined) return problem({ _tag: "UnknownResource", resource: unknown.resource })
  const other = raw.find((_, index) => parts[index]!._tag !== "Default")
  return other === undefined ? ok(undefined) : problem({ _tag: "ClientCredentialsNeedDefault", scope: other })
}

/**
 * The `scope` a delegated token answer carries: the Graph-hosted OIDC scopes and every consented Graph permission in
 * the resource's own form, then `.default` when it was asked for; `offline_access` is never echoed (recorded answers
 * of the real platform, see docs/protocol-notes.md).
 */
export const delegatedEcho = (request: DelegatedScopes): string =>
  [
    "email",
    "openid",
    "profile",
    ...[...consentedDelegatedPermissions].sort().map((permission) => `${GRAPH_RESOURCE}/${permission}`),
    ...(request.graphDefault ? [`${GRAPH_RESOURCE}/.default`] : [])
  ].join(" ")
