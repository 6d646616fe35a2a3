/**
 * The login phase of a PBX connection: the handshake (Handshake.ts) within `loginTimeoutMs`. A refused login is
 * logged with its fix, counted, answered `ok: false` — later with every failure from the same address
 * (domain/LoginBackoff.ts) — and closed; a connection that breaks before logging in is logged with the real cause.
 */
import { Clock, Effect, Metric, Option } from "effect"
import type { LoginBackoff } from "../../domain/LoginBackoff.ts"
import { loginFailures } from "../../domain/Metrics.ts"
import type { PbxSettingsOptions } from "../PbxSettings.ts"
import { countEnd, describeEnd, logAndCount } from "./ConnectionEnd.ts"
import { handshake, type HandshakeOutcome } from "./Handshake.ts"
import type { PbxConnections } from "./PbxConnections.ts"
import type { AppLogin } from "./PbxMessages.ts"
import type { SocketLink } from "./SocketLink.ts"

export const countLogin = (outcome: "failed" | "refused") =>
  Metric.update(Metric.withAttributes(loginFailures, { endpoint: "pbx", outcome }), 1)

/** What the login phase needs besides the socket. */
export interface LoginContext {
  readonly settings: PbxSettingsOptions
  readonly connections: PbxConnections["Service"]
  readonly backoff: LoginBackoff
  readonly peer: string
}

const timedOut = (context: LoginContext): HandshakeOutcome => ({
  _tag: "Refused",
  pbx: context.peer,
  reason: `no AppLogin within ${context.settings.loginTimeoutMs} ms`,
  kind: "timeout",
  fix: "Check that the App object's URL points at this connector and that its Websocket checkmark is set"
})

/** A refusal: logged, counted against the address (a timeout excepted), answered after the backoff's delay, closed. */
const refuse = Effect.fn("PbxLogin.refuse")(function*(
  link: SocketLink,
  context: LoginContext,
  outcome: Extract<HandshakeOutcome, { _tag: "Refused" }>
) {
  const { settings, peer } = context
  yield* countEnd("login", outcome.kind === "timeout" ? "timeout" : "refused")
  const failure = outcome.kind === "timeout" ? undefined : context.backoff.fail(peer, yield* Clock.currentTimeMillis)
  if (failure !== undefined) yield* countLogin("failed")
  yield* Effect.logError(`PBX login refused (${peer}): ${outcome.reason}. ${outcome.fix}`).pipe(
    Effect.annotateLogs({ logKey: `pbx-login-refused:${peer}`, fix: outcome.fix })
  )
  if (failure?.refusedNow === true) {
    yield* Effect.logWarning(
      `PBX logins from ${peer} are refused for ${Math.round(settings.loginBackoff.refuseMillis / 60_000)} min after ${failure.failures} failed logins`
    ).pipe(Effect.annotateLogs({ logKey: `pbx-login-blocked:${peer}` }))
  }
  if (outcome.pbx !== peer) yield* context.connections.reportError(outcome.pbx, { message: outcome.reason, fix: outcome.fix })
  // The answer to a failed login waits longer with every failure from this source.
  if (failure !== undefined) yield* Effect.sleep(failure.delayMillis)
  yield* link.send({ mt: "AppLoginResult", ok: false })
  yield* link.close(4001, "login refused")
})

/**
 * Runs the login phase; the AppLogin when the PBX logged in, none when the connection ends here. `tooMuch` tells
 * whether the peer sent more than it may before logging in (then the caller's finalizer reports it, not this).
 */
export const logIn = Effect.fn("PbxLogin.logIn")(function*(
  link: SocketLink,
  context: LoginContext,
  tooMuch: () => boolean
): Effect.fn.Return<Option.Option<AppLogin>> {
  const { settings, peer } = context
  const outcome = yield* handshake(link.frames, link.send, settings, peer).pipe(
    Effect.timeoutOrElse({ duration: settings.loginTimeoutMs, orElse: () => Effect.succeed(timedOut(context)) }),
    Effect.catchCause((cause) => Effect.succeed({ _tag: "Broken", cause } as const))
  )
  if (outcome._tag === "Broken") {
    // The frame queue ends when the socket does: the socket's own end is the real cause, else the handshake's.
    if (!tooMuch()) {
      yield* logAndCount("login", `PBX connection from ${peer}`, link.end() ?? describeEnd(outcome.cause, [settings.appPassword]))
    }
    return Option.none()
  }
  if (outcome._tag === "Refused") {
    yield* refuse(link, context, outcome)
    return Option.none()
  }
  context.backoff.succeed(peer)
  return Option.some(outcome.login)
})
