/**
 * Sign-in failures, classified from the identity platform's `error` / `error_codes` (never from the text), each with
 * a message that tells the administrator what to fix in Azure or in the configuration. Never carries a secret or token.
 */
import { Schema } from "effect"

export const AuthErrorReasons = [
  "WrongSecret",
  "ExpiredSecret",
  "TenantNotFound",
  "AppNotInTenant",
  "ConsentMissing",
  "BadUserCredentials",
  "MfaRequired",
  "InvalidScope",
  "LoginRequired",
  "Network",
  "Other"
] as const
export type AuthErrorReason = typeof AuthErrorReasons[number]

export class AuthError extends Schema.TaggedError<AuthError>()("AuthError", {
  reason: Schema.Literals(AuthErrorReasons),
  /** Label of the credential ("app" or "account:<name>"). */
  credential: Schema.String,
  /** The AADSTS code (e.g. 7000215) or the OAuth `error` when there is no code. */
  code: Schema.optionalKey(Schema.String),
  /** What happened and what to do. */
  message: Schema.String,
  /** What to fix, on its own (for the status page). */
  fix: Schema.String
}) {}

/** The identity platform's error body (protocols.md §1.1). */
export const TokenErrorBody = Schema.Struct({
  error: Schema.String,
  error_description: Schema.optionalKey(Schema.String),
  error_codes: Schema.optionalKey(Schema.Array(Schema.Number)),
  timestamp: Schema.optionalKey(Schema.String),
  trace_id: Schema.optionalKey(Schema.String),
  correlation_id: Schema.optionalKey(Schema.String)
})
export type TokenErrorBody = typeof TokenErrorBody.Type

interface Classified {
  readonly reason: AuthErrorReason
  readonly what: string
  readonly fix: string
}

const byCode: Record<number, (credential: string) => Classified> = {
  7000215: () => ({
    reason: "WrongSecret",
    what: "the client secret was rejected (AADSTS7000215)",
    fix: "Copy the secret's Value (not its ID) from Azure portal → App registrations → Certificates & secrets into the configuration."
  }),
  7000222: () => ({
    reason: "ExpiredSecret",
    what: "the client secret has expired (AADSTS7000222)",
    fix: "Create a new client secret in Azure portal → App registrations → Certificates & secrets and put it into the configuration."
  }),
  700027: () => ({
    reason: "WrongSecret",
    what: "the client assertion was rejected: the certificate is not registered or its signature does not verify (AADSTS700027)",
    fix: "Upload the certificate (public part) under App registrations → Certificates & secrets, and configure the matching private key."
  }),
  90002: () => ({
    reason: "TenantNotFound",
    what: "the tenant was not found (AADSTS90002)",
    fix: "Set the tenant ID (Directory ID from Azure portal → Microsoft Entra ID → Overview) in the configuration."
  }),
  700016: () => ({
    reason: "AppNotInTenant",
    what: "the application was not found in the tenant (AADSTS700016)",
    fix: "Check the client ID (Application ID of the app registration) and that the app is registered in, or consented to by, this tenant."
  }),
  65001: () => ({
    reason: "ConsentMissing",
    what: "the permissions have not been consented (AADSTS65001)",
    fix: "Grant admin consent for User.Read.All and Presence.Read.All under App registrations → API permissions."
  }),
  50126: (credential) => ({
    reason: "BadUserCredentials",
    what: "the user name or password of the technical account was rejected (AADSTS50126)",
    fix: `Check the username and password of ${credential} in the configuration.`
  }),
  50076: (credential) => ({
    reason: "MfaRequired",
    what: "the technical account requires multi-factor authentication, which the password flow cannot do (AADSTS50076)",
    fix: `Switch ${credential} to the device-code flow and run \`teams-presence-connector login --account <name>\`, or exclude the account from MFA.`
  }),
  50079: (credential) => ({
    reason: "MfaRequired",
    what: "the technical account must register for multi-factor authentication (AADSTS50079)",
    fix: `Switch ${credential} to the device-code flow and run \`teams-presence-connector login --account <name>\`.`
  }),
  70011: () => ({
    reason: "InvalidScope",
    what: "the requested scope is not valid (AADSTS70011)",
    fix: "Check the Graph base URL in the configuration: the scope is the Graph cloud's root followed by /.default."
  }),
  500011: () => ({
    reason: "InvalidScope",
    what: "the tenant does not know the requested resource (AADSTS500011)",
    fix: "Check the Graph base URL in the configuration and that the tenant is in the same cloud as the login base URL."
  }),
  7000218: () => ({
    reason: "Other",
    what: "the token request needs a client secret or assertion (AADSTS7000218)",
    fix: "Enable “Allow public client flows” under App registrations → Authentication, or configure an application credential."
  })
}

const loginRequired = (credential: string, what: string): Classified => ({
  reason: "LoginRequired",
  what,
  fix: `Run \`teams-presence-connector login --account ${credential.replace(/^account:/, "")}\` to sign the technical account in again.`
})

/** Maps an identity-platform error body onto an `AuthError`. */
export const classifyTokenError = (credential: string, body: TokenErrorBody): AuthError => {
  const codes = body.error_codes ?? []
  const known = codes.map((code) => byCode[code]).find((entry) => entry !== undefined)
  const classified: Classified = known !== undefined
    ? known(credential)
    : body.error === "invalid_grant" || body.error === "expired_token" || body.error === "interaction_required"
    ? loginRequired(credential, `the stored sign-in is no longer valid (${body.error})`)
    : body.error === "invalid_scope"
    ? byCode[70011]!(credential)
    : body.error === "access_denied"
    ? { reason: "Other", what: "the user declined the sign-in (access_denied)", fix: "Run the login again and accept." }
    : { reason: "Other", what: `the identity platform answered ${body.error}`, fix: "See the AADSTS code in the Microsoft Entra sign-in logs." }
  const code = codes[0] !== undefined ? String(codes[0]) : body.error
  return new AuthError({
    reason: classified.reason,
    credential,
    code,
    message: `Sign-in of ${credential} failed: ${classified.what}. ${classified.fix}`,
    fix: classified.fix
  })
}

export const networkAuthError = (credential: string, detail: string): AuthError =>
  new AuthError({
    reason: "Network",
    credential,
    message: `Sign-in of ${credential} failed: the identity platform could not be reached (${detail}). Check the network, proxy and the login base URL.`,
    fix: "Check the network, proxy and the login base URL."
  })
