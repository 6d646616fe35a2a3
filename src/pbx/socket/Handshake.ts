/**
 * The AppChallenge / AppLogin handshake of a PBX connection (protocols.md §2.2), before anything else is accepted from
 * the peer: frames are small (`loginFrameBytes`) and few (`maxFramesBeforeLogin`), every refusal says why and what to do.
 */
import { randomBytes } from "node:crypto"
import { type Cause, Effect, Queue, Schema } from "effect"
import { clip } from "../../domain/LogText.ts"
import { digestMatches, loginDigest, rawTopLevelMember } from "./AppLoginDigest.ts"
import { maskSecrets } from "./ConnectionEnd.ts"
import { AppLogin, Envelope, parseJson, type PbxMessage } from "./PbxMessages.ts"
import type { PbxSettingsOptions } from "../PbxSettings.ts"

const decodeEnvelope = Schema.decodeUnknownResult(Envelope)
const decodeAppLogin = Schema.decodeUnknownResult(AppLogin)

/** A fresh challenge: 16 hex digits from the system CSPRNG (a login nonce must be unpredictable, which Random is not). */
const newChallenge = (): string => randomBytes(8).toString("hex")

/** A frame as a log line quotes it: password-like members masked, then clipped. */
export const preview = (text: string): string => clip(maskSecrets(text), 200)

export type Frame = { readonly text: string; readonly json: Record<string, unknown>; readonly envelope: Envelope }

/** Parses one frame: the frame, or why it is ignored ("not-json", "no-mt"). Synchronous: it runs once per frame of a burst. */
export const parseFrame = (text: string): Frame | "not-json" | "no-mt" => {
  const json = parseJson(text)
  if (json === undefined) return "not-json"
  const envelope = decodeEnvelope(json)
  if (envelope._tag === "Failure") return "no-mt"
  return { text, json: json as Record<string, unknown>, envelope: envelope.success }
}

/** Logs (rate-limited per peer) why a frame was ignored. */
export const logIgnoredFrame = (problem: "not-json" | "no-mt", text: string, who: string): Effect.Effect<void> =>
  Effect.logWarning(
    problem === "not-json" ? `${who}: ignored a frame that is not JSON: ${preview(text)}` : `${who}: ignored a frame without a valid "mt": ${preview(text)}`
  ).pipe(Effect.annotateLogs({ logKey: problem === "not-json" ? `pbx-frame-not-json:${who}` : `pbx-frame-no-mt:${who}` }))

/** Parses one frame; logs (rate-limited per peer) and returns undefined when it is not a JSON object with an `mt`. */
export const readFrame = (text: string, who: string): Effect.Effect<Frame | undefined> => {
  const frame = parseFrame(text)
  return typeof frame === "string" ? Effect.as(logIgnoredFrame(frame, text, who), undefined) : Effect.succeed(frame)
}

/** Why a login was refused: `password` and `protocol` count against the peer's backoff, a `timeout` does not. */
export type RefusalKind = "password" | "protocol" | "timeout"

export type HandshakeOutcome =
  | { readonly _tag: "LoggedIn"; readonly login: AppLogin }
  | {
    readonly _tag: "Refused"
    readonly kind: RefusalKind
    /** The PBX's name as its AppLogin claims it (clipped), else the peer's address. */
    readonly pbx: string
    readonly reason: string
    readonly fix: string
  }

const checkUrl = "Check that the App object's URL points at this connector"

const refused = (kind: RefusalKind, pbx: string, reason: string, fix: string): HandshakeOutcome => ({
  _tag: "Refused",
  kind,
  pbx,
  reason,
  fix
})

/** Runs AppChallenge / AppLogin until the PBX has logged in or is refused. */
export const handshake = Effect.fn("PbxLogin.handshake")(function*(
  frames: Queue.Dequeue<string, Cause.Done>,
  send: (message: PbxMessage) => Effect.Effect<void>,
  settings: PbxSettingsOptions,
  peer: string
) {
  let challenge: string | undefined
  const who = `PBX connection from ${peer}`
  for (let received = 1;; received++) {
    const text = yield* Queue.take(frames)
    if (received > settings.maxFramesBeforeLogin) {
      return refused("protocol", peer, `more than ${settings.maxFramesBeforeLogin} frames before logging in`, checkUrl)
    }
    const bytes = Buffer.byteLength(text)
    if (bytes > settings.loginFrameBytes) {
      return refused("protocol", peer, `a frame of ${bytes} bytes before logging in (at most ${settings.loginFrameBytes})`, checkUrl)
    }
    const frame = yield* readFrame(text, who)
    if (frame === undefined) continue
    switch (frame.envelope.mt) {
      case "AppChallenge": {
        challenge = newChallenge()
        yield* send({ mt: "AppChallengeResult", challenge })
        continue
      }
      case "KeepAlive":
        continue
      case "AppLogin": {
        const decoded = decodeAppLogin(frame.json)
        if (decoded._tag === "Failure") {
          return refused("protocol", peer, `malformed AppLogin: ${clip(decoded.failure.message, 200)}`, checkUrl)
        }
        const login = decoded.success
        const pbx = clip(login.info?.pbx ?? login.domain, 64)
        if (challenge === undefined) return refused("protocol", pbx, "AppLogin arrived before an AppChallenge", checkUrl)
        const expected = loginDigest({ ...login, infoText: rawTopLevelMember(frame.text, "info") }, challenge, settings.appPassword)
        if (!digestMatches(login.digest, expected)) {
          return refused(
            "password",
            pbx,
            `wrong App object password for PBX ${pbx}`,
            `Set the same password on the App object of PBX ${pbx} and in the connector's configuration`
          )
        }
        return { _tag: "LoggedIn", login } satisfies HandshakeOutcome
      }
      default:
        yield* Effect.logWarning(`${who}: ignored ${clip(frame.envelope.mt, 40)} before login`).pipe(
          Effect.annotateLogs({ logKey: `pbx-before-login:${peer}` })
        )
    }
  }
})
