/**
 * The simulated identity platform's successful token answers. Client credentials: `{token_type, expires_in,
 * ext_expires_in, access_token}` and no `scope` (as recorded from the real platform). Delegated: the `scope` echo in the
 * resource's own form, a `refresh_token` only when `offline_access` was asked for, an `id_token` (signed with the
 * published key) only for `openid`, and `client_info` when the client sent `client_info=1` (MSAL does).
 */
import { Clock, Effect } from "effect"
import { HttpServerResponse } from "effect/http"
import { createHash, randomBytes } from "node:crypto"
import { type DelegatedScopes, delegatedEcho } from "./SimScopes.ts"
import type { Principal, SimState } from "./SimState.ts"

type State = SimState["Service"]

/** The v2.0 issuer of a tenant at the simulator, as its discovery document names it. */
export const issuerOf = (baseUrl: string, tenantId: string): string => `${baseUrl}/${tenantId}/v2.0`

/** The same user has a different `sub` in every app (`subject_types_supported: ["pairwise"]`). */
export const pairwiseSubject = (userId: string, clientId: string): string =>
  createHash("sha256").update(`${userId}:${clientId}`).digest("base64url")

const idToken = Effect.fnUntraced(function*(state: State, principal: Principal, scopes: DelegatedScopes) {
  const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
  const user = principal.userId === undefined ? undefined : state.getUser(principal.userId)
  const userId = principal.userId ?? ""
  return yield* state.signing.sign({
    aud: state.clientId,
    iss: issuerOf(state.baseUrl(), principal.tenantId),
    iat: now,
    nbf: now,
    exp: now + 3600,
    sub: pairwiseSubject(userId, state.clientId),
    tid: principal.tenantId,
    uti: randomBytes(16).toString("base64url"),
    ver: "2.0",
    ...(scopes.oidc.has("profile")
      ? { name: user?.displayName ?? principal.upn ?? "", oid: userId, preferred_username: principal.upn ?? "" }
      : {}),
    ...(scopes.oidc.has("email") && user?.mail != null ? { email: user.mail } : {})
  })
})

const clientInfo = (principal: Principal): string =>
  Buffer.from(JSON.stringify({ uid: principal.userId ?? "", utid: principal.tenantId })).toString("base64url")

export const appTokenAnswer = Effect.fnUntraced(function*(state: State, principal: Principal) {
  const { token, expiresIn } = yield* state.issueToken(principal)
  return HttpServerResponse.jsonUnsafe({ token_type: "Bearer", expires_in: expiresIn, ext_expires_in: expiresIn, access_token: token })
})

export const delegatedTokenAnswer = Effect.fnUntraced(function*(
  state: State,
  principal: Principal,
  scopes: DelegatedScopes,
  options: { readonly clientInfo: boolean }
) {
  const { token, expiresIn } = yield* state.issueToken(principal)
  return HttpServerResponse.jsonUnsafe({
    token_type: "Bearer",
    scope: delegatedEcho(scopes),
    expires_in: expiresIn,
    ext_expires_in: expiresIn,
    access_token: token,
    ...(scopes.oidc.has("offline_access") ? { refresh_token: state.issueRefreshToken({ principal, scopes }) } : {}),
    ...(scopes.oidc.has("openid") ? { id_token: yield* idToken(state, principal, scopes) } : {}),
    ...(options.clientInfo ? { client_info: clientInfo(principal) } : {})
  })
})
