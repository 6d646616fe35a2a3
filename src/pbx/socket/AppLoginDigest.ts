/**
 * The AppWebsocket login digest (protocols.md §2.2): SHA-256 over `app:domain:sip:guid:dn:info:challenge:password`,
 * where `info` is the info object's compact JSON text exactly as received. Pure functions, shared with the PBX simulator.
 */
import { createHash, timingSafeEqual } from "node:crypto"
import { Redacted } from "effect"

export interface DigestFields {
  readonly app: string
  readonly domain: string
  readonly sip: string
  readonly guid: string
  readonly dn: string
  /** The info object's JSON text as it appears on the wire, or undefined when the login has no info. */
  readonly infoText: string | undefined
}

/** Lowercase hex SHA-256 of the login fields, the challenge and the App object password. */
export const loginDigest = (fields: DigestFields, challenge: string, password: Redacted.Redacted<string>): string => {
  const parts = [fields.app, fields.domain, fields.sip, fields.guid, fields.dn]
  if (fields.infoText !== undefined) parts.push(fields.infoText)
  parts.push(challenge, Redacted.value(password))
  return createHash("sha256").update(parts.join(":"), "utf8").digest("hex")
}

/** Compares a received digest with the expected one in constant time (both are hashed first, so lengths never leak). */
export const digestMatches = (received: string, expected: string): boolean => {
  const a = createHash("sha256").update(received.toLowerCase(), "utf8").digest()
  const b = createHash("sha256").update(expected, "utf8").digest()
  return timingSafeEqual(a, b)
}

/**
 * Returns the raw JSON text of a top-level member of a JSON object text, without re-serialising it: the digest covers
 * the bytes the PBX sent, and `JSON.stringify(JSON.parse(...))` can differ from them (escapes, number spelling).
 * Undefined when the text is not an object or the member is absent.
 */
export const rawTopLevelMember = (json: string, key: string): string | undefined => {
  let i = skipWs(json, 0)
  if (json[i] !== "{") return undefined
  i = skipWs(json, i + 1)
  while (i < json.length && json[i] !== "}") {
    if (json[i] !== "\"") return undefined
    const keyEnd = stringEnd(json, i)
    if (keyEnd < 0) return undefined
    const name = JSON.parse(json.slice(i, keyEnd)) as string
    i = skipWs(json, keyEnd)
    if (json[i] !== ":") return undefined
    const start = skipWs(json, i + 1)
    const end = valueEnd(json, start)
    if (end < 0) return undefined
    if (name === key) return json.slice(start, end)
    i = skipWs(json, end)
    if (json[i] === ",") i = skipWs(json, i + 1)
  }
  return undefined
}

const skipWs = (text: string, from: number): number => {
  let i = from
  while (i < text.length && " \t\r\n".includes(text[i]!)) i++
  return i
}

/** Index just after the string literal starting at `from` (which is a quote), or -1. */
const stringEnd = (text: string, from: number): number => {
  for (let i = from + 1; i < text.length; i++) {
    const c = text[i]
    if (c === "\\") i++
    else if (c === "\"") return i + 1
  }
  return -1
}

/** Index just after the JSON value starting at `from`, or -1. */
const valueEnd = (text: string, from: number): number => {
  const first = text[from]
  if (first === "\"") return stringEnd(text, from)
  if (first === "{" || first === "[") {
    let depth = 0
    for (let i = from; i < text.length; i++) {
      const c = text[i]
      if (c === "\"") {
        i = stringEnd(text, i) - 1
        if (i < 0) return -1
      } else if (c === "{" || c === "[") depth++
      else if (c === "}" || c === "]") {
        depth--
        if (depth === 0) return i + 1
      }
    }
    return -1
  }
  let i = from
  while (i < text.length && !",}] \t\r\n".includes(text[i]!)) i++
  return i > from ? i : -1
}
