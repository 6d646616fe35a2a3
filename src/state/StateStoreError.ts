/** The state store's one error: what could not be done, for which tenant, and what to do about it. Never a secret. */
import { Schema } from "effect"

export class StateStoreError extends Schema.TaggedError<StateStoreError>()("StateStoreError", {
  /**
   * Unavailable: the files or the database cannot be reached or written; Corrupt: stored data does not decode;
   * Sealed: a secret cannot be sealed or opened with the configured state keys; Invalid: a value handed to the store is
   * not valid; Fenced: a write carried an owner epoch that is no longer current; NotConfigured: the store is missing a
   * setting it needs (database URL, state key).
   */
  reason: Schema.Literals(["Unavailable", "Corrupt", "Sealed", "Invalid", "Fenced", "NotConfigured"]),
  tenant: Schema.optionalKey(Schema.String),
  message: Schema.String
}) {}

const firstLine = (cause: unknown): string | undefined => {
  const message = cause instanceof Error || (typeof cause === "object" && cause !== null && "message" in cause)
    ? String((cause as { readonly message: unknown }).message)
    : cause === undefined ? undefined : String(cause)
  return message?.split("\n")[0]?.trim()
}

/**
 * The first line of a cause's message and of the causes beneath it (a driver's "failed to connect" and the server's
 * "password authentication failed"), clipped: enough to act on, never a dump of stored data.
 */
export const describeCause = (cause: unknown): string => {
  const lines: Array<string> = []
  let current: unknown = cause
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth++) {
    const line = firstLine(current)
    if (line !== undefined && line !== "" && !lines.includes(line)) lines.push(line)
    current = typeof current === "object" && "cause" in current ? (current as { readonly cause: unknown }).cause : undefined
  }
  const text = lines.join(": ")
  return text.length > 300 ? `${text.slice(0, 300)}…` : text
}
