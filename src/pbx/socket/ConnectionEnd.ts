/**
 * Why a PBX websocket ended, told from the socket's cause (a clean close, a socket error, a defect), and the masking
 * applied to whatever a log line quotes from the wire: password-like JSON members and the App object's password.
 */
import { Cause, Effect, Metric, Redacted } from "effect"
import { pbxConnectionEnds } from "../../domain/Metrics.ts"
import { clip } from "../../domain/LogText.ts"

export type EndReason = "closed" | "socket_error" | "timeout" | "refused" | "defect" | "connector"

export interface ConnectionEnd {
  readonly reason: EndReason
  /** One line for the log, secrets masked. */
  readonly text: string
}

const secretMembers = /"(pwd|password|passwd|digest|key|secret|token|refresh_token|access_token)"\s*:\s*"(?:[^"\\]|\\.)*"/gi

/** Masks password-like JSON members and every given secret value in `text`. */
export const maskSecrets = (text: string, secrets: ReadonlyArray<Redacted.Redacted<string>> = []): string => {
  let masked = text.replace(secretMembers, (_, name: string) => `"${name}":"***"`)
  for (const secret of secrets) {
    const value = Redacted.value(secret)
    if (value.length > 0) masked = masked.split(value).join("***")
  }
  return masked
}

interface SocketCloseLike {
  readonly _tag: "SocketError"
  readonly reason: { readonly _tag: string; readonly code?: number; readonly message?: string }
}

const isSocketError = (error: unknown): error is SocketCloseLike =>
  typeof error === "object" && error !== null && (error as { _tag?: unknown })._tag === "SocketError" &&
  typeof (error as { reason?: unknown }).reason === "object"

/** Classifies the cause that ended a socket's reader or a connection's loop. */
export const describeEnd = (cause: Cause.Cause<unknown>, secrets: ReadonlyArray<Redacted.Redacted<string>> = []): ConnectionEnd => {
  const failure = cause.reasons.find(Cause.isFailReason)
  if (failure !== undefined && isSocketError(failure.error)) {
    const { reason } = failure.error
    const clean = reason._tag === "SocketCloseError" && (reason.code === 1000 || reason.code === 1001)
    return {
      reason: clean ? "closed" : "socket_error",
      text: maskSecrets(
        reason._tag === "SocketCloseError" ? `the PBX closed the websocket (code ${reason.code ?? "?"})` : `socket error: ${reason.message ?? reason._tag}`,
        secrets
      )
    }
  }
  // The frame queue ended without a socket error: the connector closed the connection itself (a replaced connection,
  // a refused login, shutdown).
  if (Cause.hasInterruptsOnly(cause) || (failure !== undefined && Cause.isDone(failure.error))) {
    return { reason: "connector", text: "closed by the connector" }
  }
  const first = maskSecrets(Cause.pretty(cause), secrets).split("\n").slice(0, 3).join(" | ")
  return { reason: failure !== undefined ? "socket_error" : "defect", text: first }
}

/** Counts one ended connection. */
export const countEnd = (stage: "login" | "connected", reason: EndReason) =>
  Metric.update(Metric.withAttributes(pbxConnectionEnds, { stage, reason }), 1)

export const logAndCount = (stage: "login" | "connected", who: string, end: ConnectionEnd) =>
  Effect.andThen(
    countEnd(stage, end.reason),
    (end.reason === "closed" || end.reason === "connector"
      ? Effect.logInfo(`${who}: ${stage === "login" ? "closed before logging in" : "connection ended"}: ${clip(end.text, 300)}`)
      : Effect.logWarning(`${who}: ${stage === "login" ? "failed before logging in" : "connection failed"}: ${clip(end.text, 300)}`)).pipe(
        // Before login anyone can connect: one line a minute per kind of end, the rest counted (connector/LogRepeats.ts).
        Effect.annotateLogs(stage === "login" ? { logKey: `pbx-end:login:${end.reason}` } : {})
      )
  )
