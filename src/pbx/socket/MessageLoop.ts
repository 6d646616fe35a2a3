/**
 * The message loop of one logged-in PBX connection: every frame is parsed (Handshake.ts `readFrame`), then handled —
 * KeepAlive is accepted, PbxInfo recorded, AppInfo answered, a result routed to its request, an API message published
 * as an indication. Bad frames are logged and ignored; they never close a healthy connection.
 */
import { Cause, Deferred, Effect, PubSub, Queue, Schema } from "effect"
import { clip } from "../../domain/LogText.ts"
import type { PbxSettingsOptions } from "../PbxSettings.ts"
import { countEnd, describeEnd } from "./ConnectionEnd.ts"
import { type Frame, preview, readFrame } from "./Handshake.ts"
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

/** Handles frames until the socket ends or the connector closes the connection; then counts how it ended. */
export const messageLoop = Effect.fnUntraced(function*(session: Session, settings: PbxSettingsOptions) {
  const loop = Effect.forever(
    Effect.flatMap(Queue.take(session.link.frames), (text) =>
      Effect.flatMap(readFrame(text, session.who), (frame) => (frame === undefined ? Effect.void : dispatch(session, frame)))),
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
