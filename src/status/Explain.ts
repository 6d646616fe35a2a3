/**
 * Technical causes in words an administrator understands: a websocket close code, a Node.js network error, an AADSTS
 * code, a refused App login, a Graph status. Pure; the status page shows the words and keeps the technical text one
 * click away (`detail`), the log keeps both. A text no rule knows is returned as it is, without a detail.
 */

export interface Explained {
  /** What happened, in the administrator's words. */
  readonly text: string
  /** The technical cause as the connector saw it, when `text` is not that. */
  readonly detail?: string | undefined
}

/** The longest technical detail kept: a cause quoted from outside may be long. */
const maxDetail = 500

/** Microsoft Entra sign-in errors by AADSTS code (docs/azure-setup.md §5 has the fixes). */
const signInCodes: Record<string, string> = {
  "7000215": "wrong client secret",
  "7000222": "the client secret has expired",
  "700027": "the app's certificate is not accepted (not registered, or the key does not match)",
  "7000218": "the app does not allow public client flows",
  "90002": "the tenant does not exist",
  "700016": "the app is not registered in this tenant",
  "65001": "admin consent for the app's permissions is missing",
  "50126": "wrong user name or password of the technical account",
  "50076": "the technical account must use multi-factor sign-in",
  "50079": "the technical account must register for multi-factor sign-in",
  "50034": "the technical account does not exist",
  "50057": "the technical account is disabled",
  "50053": "the technical account is locked",
  "50055": "the technical account's password has expired",
  "53003": "a Conditional Access policy blocks the sign-in",
  "70011": "the Graph address in the configuration is not valid for this tenant",
  "500011": "the Graph address in the configuration is not valid for this tenant",
  "70000": "the stored sign-in is no longer valid; sign in again",
  "70008": "the stored sign-in has expired; sign in again",
  "700082": "the stored sign-in has expired; sign in again",
  "50173": "the stored sign-in was revoked; sign in again"
}

/** Websocket close codes (RFC 6455 §7.4.1) as the PBX connection sees them. */
const closeCodes: Record<string, string> = {
  "1000": "the PBX closed the connection",
  "1001": "the PBX closed the connection (it is going away, e.g. restarting)",
  "1006": "the connection to the PBX broke off without a goodbye (network error, or the PBX restarted)",
  "1009": "a message was too large for the connection",
  "1011": "the PBX ended the connection after an internal error",
  "4001": "the App login was refused"
}

/** Node.js network error codes. */
const networkCodes: Record<string, string> = {
  ECONNREFUSED: "connection refused: nothing answers at that address and port",
  ECONNRESET: "the connection was reset by the other side or by a proxy",
  ETIMEDOUT: "no answer in time (network error)",
  ENOTFOUND: "the host name cannot be resolved (DNS)",
  EAI_AGAIN: "the host name cannot be resolved right now (DNS)",
  EHOSTUNREACH: "the host is unreachable (network error)",
  ENETUNREACH: "the network is unreachable",
  EPIPE: "the connection was closed while writing",
  UND_ERR_CONNECT_TIMEOUT: "no answer in time while connecting (network error)",
  UND_ERR_SOCKET: "the connection broke off (network error)"
}

const graphStatus = (status: number): string | undefined =>
  status === 429
    ? "Microsoft Graph is throttling the connector (too many requests)"
    : status === 401
    ? "Microsoft Graph refused the sign-in token"
    : status === 403
    ? "Microsoft Graph refused: a permission or consent is missing"
    : status === 404
    ? "not found at Microsoft Graph"
    : status >= 500 && status < 600
    ? "Microsoft Graph is unavailable right now"
    : undefined

type Rule = (text: string) => string | undefined

const rules: ReadonlyArray<Rule> = [
  (text) => {
    const code = /AADSTS(\d+)/.exec(text)?.[1]
    if (code === undefined) return undefined
    return signInCodes[code] ?? `Microsoft refused the sign-in (AADSTS${code})`
  },
  (text) => (/\b(invalid_grant|expired_token|interaction_required)\b/.test(text) ? "the stored sign-in is no longer valid; sign in again" : undefined),
  (text) =>
    /wrong App object password|digest (mismatch|does not match)/i.test(text)
      ? "wrong App password: the App object's password on the PBX differs from the connector's"
      : undefined,
  (text) => {
    const code = /websocket \(code (\d+)\)|SocketError: (\d{4})\b|close code (\d{4})\b/.exec(text)
    if (code === null) return undefined
    const value = code[1] ?? code[2] ?? code[3]!
    return closeCodes[value] ?? `the connection to the PBX ended (close code ${value})`
  },
  (text) => {
    const code = /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EPIPE|UND_ERR_CONNECT_TIMEOUT|UND_ERR_SOCKET)\b/
      .exec(text)?.[1]
    return code === undefined ? undefined : networkCodes[code]
  },
  (text) =>
    /\b(CERT_HAS_EXPIRED|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|ERR_TLS_CERT_ALTNAME_INVALID)\b/
        .test(text)
      ? "the TLS certificate of the other side is not trusted"
      : undefined,
  (text) => (/\bValidationError\b|validation request/i.test(text)
    ? "Microsoft Graph could not validate the webhook: it cannot reach the connector at notifications.publicBaseUrl"
    : undefined),
  (text) => {
    const status = /\(HTTP (\d{3})\)/.exec(text)?.[1]
    return status === undefined ? undefined : graphStatus(Number(status))
  },
  (text) => (/\bTooManyRequests\b/.test(text) ? graphStatus(429) : undefined),
  (text) => (/\bTimeoutError\b|timed out/i.test(text) ? "no answer in time" : undefined),
  (text) => (/(^|\s)~?effect\/[\w/]+/.test(text) || /\b(Socket\w*Error)\b/.test(text) ? "an unexpected error in the connection" : undefined)
]

/**
 * A leading context such as `renewal failed: ` or `PBX x disconnected: ` is kept in front of the words: it says what
 * was being done, which the cause alone does not.
 */
const contextOf = (text: string): string => {
  const colon = text.indexOf(": ")
  if (colon <= 0 || colon > 60) return ""
  const head = text.slice(0, colon)
  return /^(?:[A-Za-z][\w ,'-]* )?(?:failed|disconnected|refused)$/.test(head) ? head + ": " : ""
}

const clipDetail = (text: string): string => (text.length > maxDetail ? text.slice(0, maxDetail) + "…" : text)

/** The words for a technical cause, with the cause itself as `detail` when the words replace it. */
export const explain = (technical: string): Explained => {
  for (const rule of rules) {
    const words = rule(technical)
    if (words !== undefined) return { text: contextOf(technical) + words, detail: clipDetail(technical) }
  }
  return { text: technical }
}

/** `{ reason, detail }` for a light: the explained text, and the technical cause when it was replaced. */
export const explained = (technical: string): { readonly reason: string; readonly detail?: string } => {
  const { detail, text } = explain(technical)
  return detail === undefined ? { reason: text } : { reason: text, detail }
}
