/**
 * The message loop of one logged-in PBX connection: every frame is parsed (Handshake.ts `parseFrame`), then handled —
 * KeepAlive is accepted, PbxInfo recorded, AppInfo answered, a result routed to its request, an API message published
 * as an indication. Bad frames are logged and ignored; they never close a healthy connection.
 */
import { Cause, Deferred, Effect, PubSub, Queue, Schema } from "effect"
import { clip } from "../../domain/LogText.ts"
import type { PbxSettingsOptions } from "../PbxSettings.ts"
import { countEnd, describeEnd } from "./ConnectionEnd.ts"
import { type Frame, logIgnoredFrame, parseFrame, preview } from "./Handshake.ts"
import type { ConnectionInternals } from "./PbxConnection.ts"
import type { PbxConnections } from "./PbxConnections.ts"
import { PbxInfo } from "./PbxMessages.ts"
import type { SocketLink } from "./SocketLink.ts"

const decodePbxInfo = Schema.decodeUnknownResult(PbxInfo)

interface Session {
  readonly who: string
  readonly link: SocketLink
  readonly internals: ConnectionInternals
  readonly connections: PbxConnections["Service"]
}

const dispatch = Effect.fnUntraced(function*(session: Session, frame: Frame) {
  const { envelope, json } = frame
  const { connection, completeRequest } = session.internals
  switch (envelope.mt) {
    case "KeepAlive":
      return
    case "PbxInfo": {
      const info = decodePbxInfo(json)
      if (info._tag === "Failure") {
        return yield* Effect.logWarning(`${session.who}: ignored a malformed PbxInfo: ${clip(info.failure.message, 200)}`)
      }
      return yield* session.connections.pbxInfo(connection, info.success)
    }
    case "AppInfo":
      return yield* session.link.send({ mt: "AppInfoResult", info: { hidden: true, apis: {} } })
  }
  if (envelope.mt.endsWith("Result") && (yield* completeRequest(envelope, json))) return
  if (envelope.api !== undefined) return yield* PubSub.publish(connection.indications, { envelope, message: json })
  yield* Effect.logWarning(`${session.who}: ignored an unexpected ${clip(envelope.mt, 40)}: ${preview(frame.text)}`).pipe(
    Effect.annotateLogs({ logKey: `pbx-unexpected:${session.who}` })
  )
})

/**
 * The frames received so far, in order. A result that answers a request (a burst's SetPresenceResults) is routed
 * without an effect of its own; every other frame goes through `dispatch`.
 */
const handleFrames = Effect.fnUntraced(function*(session: Session, texts: ReadonlyArray<string>) {
  for (const text of texts) {
    const frame = parseFrame(text)
    if (typeof frame === "string") {
      yield* logIgnoredFrame(frame, text, session.who)
      continue
    }
    if (frame.envelope.mt.endsWith("Result") && session.internals.completeRequestNow(frame.envelope, frame.json)) continue
    yield* dispatch(session, frame)
  }
})

/** Handles frames until the socket ends or the connector closes the connection; then counts how it ended. */
export const messageLoop = Effect.fnUntraced(function*(session: Session, settings: PbxSettingsOptions) {
  const loop = Effect.forever(
    Effect.flatMap(Queue.takeAll(session.link.frames), (texts) => handleFrames(session, texts)),
    // Frames already received are handled at once, not one per turn of the event loop (the answers of a burst).
    { disableYield: true }
  )
  const stopped: Cause.Cause<unknown> = yield* loop.pipe(Effect.catchCause((cause) => Effect.succeed(cause)))
  const socketEnd = session.link.end()
  if (socketEnd !== undefined) {
    // The socket ended; the registry logs the disconnect with this reason.
    return yield* countEnd("connected", socketEnd.reason)
  }
  const end = describeEnd(stopped, [settings.appPassword])
  yield* countEnd("connected", end.reason)
  if (end.reason !== "connector") {
    // The loop stopped on its own: a defect in the connector. Say what it was; the PBX reconnects.
    yield* Effect.logError(`${session.who}: the message loop failed, closing the connection: ${clip(end.text, 300)}`)
    yield* Deferred.succeed(session.link.ended, `closed by the connector after an internal error: ${end.text}`)
  }
})
