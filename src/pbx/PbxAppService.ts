/**
 * The app service websocket endpoint the PBX's App object connects to (protocols.md §2.1–2.2): the AppChallenge /
 * AppLogin handshake, then the message loop of one logged-in PBX. Bad frames are logged and ignored; they never close
 * a healthy connection.
 */
import { randomBytes } from "node:crypto"
import { Cause, Clock, Deferred, Effect, Option, PubSub, Queue, Schema } from "effect"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import * as Socket from "effect/socket/Socket"
import { digestMatches, loginDigest, rawTopLevelMember } from "./AppLoginDigest.ts"
import { type ConnectionEnd, countEnd, describeEnd, logAndCount, maskSecrets } from "./ConnectionEnd.ts"
import { type Corkable, corkPerTick, makeConnection, type PbxMessage } from "./PbxConnection.ts"
import { PbxConnections } from "./PbxConnections.ts"
import { AppLogin, Envelope, parseJson, PbxInfo } from "./PbxMessages.ts"
import { PbxSettings, type PbxSettingsOptions } from "./PbxSettings.ts"

const decodeEnvelope = Schema.decodeUnknownResult(Envelope)
const decodeAppLogin = Schema.decodeUnknownResult(AppLogin)
const decodePbxInfo = Schema.decodeUnknownResult(PbxInfo)

/** A fresh challenge: 16 hex digits from the system CSPRNG (a login nonce must be unpredictable, which Random is not). */
const newChallenge = (): string => randomBytes(8).toString("hex")

/** A frame as a log line quotes it: password-like members masked, then shortened. */
const preview = (text: string) => {
  const masked = maskSecrets(text)
  return masked.length > 200 ? `${masked.slice(0, 200)}…` : masked
}

type Frame = { readonly text: string; readonly json: Record<string, unknown>; readonly envelope: Envelope }

/** Parses one frame; logs and returns undefined when it is not a JSON object with an `mt`. */
const readFrame = (text: string, who: string) =>
  Effect.gen(function*() {
    const json = parseJson(text)
    if (json === undefined) {
      yield* Effect.logWarning(`${who}: ignored a frame that is not JSON: ${preview(text)}`)
      return undefined
    }
    const envelope = decodeEnvelope(json)
    if (envelope._tag === "Failure") {
      yield* Effect.logWarning(`${who}: ignored a frame without a valid "mt": ${preview(text)}`)
      return undefined
    }
    return { text, json: json as Record<string, unknown>, envelope: envelope.success } satisfies Frame
  })

type HandshakeOutcome =
  | { readonly _tag: "LoggedIn"; readonly login: AppLogin }
  | { readonly _tag: "Refused"; readonly pbx: string; readonly reason: string; readonly fix: string; readonly timedOut?: true }

/** Runs AppChallenge / AppLogin until the PBX has logged in or is refused. */
const handshake = (
  frames: Queue.Dequeue<string, Cause.Done>,
  send: (message: PbxMessage) => Effect.Effect<void>,
  settings: PbxSettingsOptions,
  peer: string
) =>
  Effect.gen(function*() {
    let challenge: string | undefined
    while (true) {
      const frame = yield* readFrame(yield* Queue.take(frames), `PBX connection from ${peer}`)
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
            return {
              _tag: "Refused",
              pbx: peer,
              reason: `malformed AppLogin: ${decoded.failure.message}`,
              fix: "Check that the App object's URL points at this connector"
            } satisfies HandshakeOutcome
          }
          const login = decoded.success
          const pbx = login.info?.pbx ?? login.domain
          if (challenge === undefined) {
            return {
              _tag: "Refused",
              pbx,
              reason: "AppLogin arrived before an AppChallenge",
              fix: "Check that the App object's URL points at this connector"
            } satisfies HandshakeOutcome
          }
          const expected = loginDigest(
            { ...login, infoText: rawTopLevelMember(frame.text, "info") },
            challenge,
            settings.appPassword
          )
          if (!digestMatches(login.digest, expected)) {
            return {
              _tag: "Refused",
              pbx,
              reason: `wrong App object password for PBX ${pbx}`,
              fix: `Set the same password on the App object of PBX ${pbx} and in the connector's configuration`
            } satisfies HandshakeOutcome
          }
          return { _tag: "LoggedIn", login } satisfies HandshakeOutcome
        }
        default:
          yield* Effect.logWarning(`PBX connection from ${peer}: ignored ${frame.envelope.mt} before login`)
      }
    }
  })

let connectionIds = 0

/**
 * Dead-peer detection without protocol traffic: the AppWebsocket protocol has the client (here the PBX) send
 * KeepAlive, never the app service (docs/protocol-notes.md, "KeepAlive"), so the connector asks the operating system
 * to probe the idle TCP connection instead.
 */
const enableTcpKeepAlive = (request: HttpServerRequest.HttpServerRequest, idleMillis: number): void => {
  const socket: unknown = (request.source as { readonly socket?: unknown }).socket
  if (typeof socket === "object" && socket !== null && "setKeepAlive" in socket && typeof socket.setKeepAlive === "function") {
    socket.setKeepAlive(true, idleMillis)
  }
}

/** The TCP socket under an upgraded request served by Node's HTTP server; undefined for other servers. */
const tcpSocketOf = (request: HttpServerRequest.HttpServerRequest): Corkable | undefined => {
  const socket: unknown = (request.source as { readonly socket?: unknown }).socket
  return typeof socket === "object" && socket !== null && "cork" in socket && "uncork" in socket &&
      typeof socket.cork === "function" && typeof socket.uncork === "function"
    ? (socket as Corkable)
    : undefined
}

/** Serves one websocket: handshake, registration, then the message loop until the socket or the PBX ends it. */
const serveSocket = (socket: Socket.Socket, peer: string, tcp: Corkable | undefined) =>
  Effect.gen(function*() {
    const settings = yield* PbxSettings
    const connections = yield* PbxConnections
    const pull = yield* Socket.readerString(socket)
    const writer = yield* socket.writer
    const frames = yield* Queue.unbounded<string, Cause.Done>()
    const ended = yield* Deferred.make<string>()
    /** How the socket ended, once it has: the real cause behind the frame queue's end. */
    let socketEnd: ConnectionEnd | undefined
    // Frames written in one tick leave together: one syscall per wave of SetPresence, not one per frame.
    const hold = corkPerTick(tcp)
    const holdThenWrite = (text: string) => Effect.andThen(Effect.sync(hold), writer.write(text))

    // The reader turns socket batches into single frames; any socket end, clean or not, ends the frame queue.
    yield* Effect.gen(function*() {
      while (true) {
        const batch = yield* pull
        for (const text of batch) yield* Queue.offer(frames, text)
      }
    }).pipe(
      Effect.catchCause((cause) => {
        socketEnd = describeEnd(cause, [settings.appPassword])
        return Effect.andThen(Deferred.succeed(ended, socketEnd.text), Queue.end(frames))
      }),
      Effect.forkScoped
    )

    const write = (text: string) =>
      Effect.gen(function*() {
        if (yield* Deferred.isDone(ended)) return
        yield* Effect.raceFirst(Effect.ignore(holdThenWrite(text)), Deferred.await(ended))
      })
    const send = (message: PbxMessage) => write(JSON.stringify(message))
    // Ends the message loop first; the close frame is best effort, as a dead peer would never take it.
    const closeSocket = (code: number, reason: string) =>
      Effect.andThen(
        Queue.end(frames),
        Effect.raceFirst(Effect.ignore(writer.write(new Socket.CloseEvent(code, reason))), Deferred.await(ended)).pipe(
          Effect.timeoutOption(1000),
          Effect.asVoid
        )
      )

    const outcome = yield* handshake(frames, send, settings, peer).pipe(
      Effect.timeoutOrElse({
        duration: settings.loginTimeoutMs,
        orElse: () =>
          Effect.succeed(
            {
              _tag: "Refused",
              pbx: peer,
              reason: `no AppLogin within ${settings.loginTimeoutMs} ms`,
              fix: "Check that the App object's URL points at this connector and that its Websocket checkmark is set",
              timedOut: true
            } as const
          )
      }),
      Effect.catchCause((cause) => Effect.succeed({ _tag: "Broken", cause } as const))
    )
    if (outcome._tag === "Broken") {
      // The frame queue ends when the socket does: the socket's own end is the real cause, else the handshake's.
      return yield* logAndCount("login", `PBX connection from ${peer}`, socketEnd ?? describeEnd(outcome.cause, [settings.appPassword]))
    }
    if (outcome._tag === "Refused") {
      yield* countEnd("login", "timedOut" in outcome ? "timeout" : "refused")
      yield* send({ mt: "AppLoginResult", ok: false })
      yield* Effect.logError(`PBX login refused (${peer}): ${outcome.reason}. ${outcome.fix}`)
      if (outcome.pbx !== peer) yield* connections.reportError(outcome.pbx, { message: outcome.reason, fix: outcome.fix })
      yield* closeSocket(4001, "login refused")
      return
    }

    const login = outcome.login
    const pbx = login.info?.pbx ?? login.domain
    const who = `PBX ${pbx}`
    const { completeRequest, connection, shutdown } = yield* makeConnection({
      id: ++connectionIds,
      pbx,
      isMaster: connections.isMaster(pbx),
      login,
      connectedAt: yield* Clock.currentTimeMillis,
      requestTimeoutMs: settings.requestTimeoutMs,
      write,
      close: (reason) => closeSocket(1000, reason.slice(0, 100))
    })
    yield* send({ mt: "AppLoginResult", ok: true })
    // The server interrupts this fiber when the peer vanishes, so the cleanup is a finalizer, not code after the loop.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const why = Option.getOrElse(yield* Deferred.poll(ended), () => Effect.succeed("connection closed"))
        const reason = yield* why
        yield* shutdown(reason)
        yield* connections.unregister(connection, reason)
      })
    )
    yield* connections.register(connection)

    const dispatch = (frame: Frame) =>
      Effect.gen(function*() {
        const { envelope, json } = frame
        switch (envelope.mt) {
          case "KeepAlive":
            return
          case "PbxInfo": {
            const info = decodePbxInfo(json)
            if (info._tag === "Failure") {
              return yield* Effect.logWarning(`${who}: ignored a malformed PbxInfo: ${info.failure.message}`)
            }
            return yield* connections.pbxInfo(connection, info.success)
          }
          case "AppInfo":
            return yield* send({ mt: "AppInfoResult", info: { hidden: true, apis: {} } })
        }
        if (envelope.mt.endsWith("Result") && (yield* completeRequest(envelope, json))) return
        if (envelope.api !== undefined) {
          yield* PubSub.publish(connection.indications, { envelope, message: json })
          return
        }
        yield* Effect.logWarning(`${who}: ignored an unexpected ${envelope.mt}: ${preview(frame.text)}`)
      })

    const loop = Effect.gen(function*() {
      while (true) {
        const frame = yield* readFrame(yield* Queue.take(frames), who)
        if (frame !== undefined) yield* dispatch(frame)
      }
    })
    const stopped = yield* loop.pipe(Effect.catchCause((cause) => Effect.succeed(cause)))
    if (socketEnd !== undefined) {
      // The socket ended; the registry logs the disconnect with this reason.
      yield* countEnd("connected", socketEnd.reason)
    } else {
      const end = describeEnd(stopped, [settings.appPassword])
      yield* countEnd("connected", end.reason)
      if (end.reason !== "connector") {
        // The loop stopped on its own: a defect in the connector. Say what it was; the PBX reconnects.
        yield* Effect.logError(`${who}: the message loop failed, closing the connection: ${end.text}`)
        yield* Deferred.succeed(ended, `closed by the connector after an internal error: ${end.text}`)
      }
    }
    yield* Deferred.succeed(ended, "closed by the connector")
  }).pipe(Effect.scoped)

export class PbxAppService {
  /** `GET {path}`: the websocket the App object connects to. Served on the connector's HTTP server. */
  static readonly routes = HttpRouter.use(Effect.fn("PbxAppService.routes")(function*(router) {
    const settings = yield* PbxSettings
    const connections = yield* PbxConnections
    yield* router.add("GET", settings.path as HttpRouter.PathInput, (request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function*() {
        const peer = request.remoteAddress._tag === "Some" ? request.remoteAddress.value : "unknown address"
        const socket = yield* request.upgrade
        enableTcpKeepAlive(request, settings.keepAliveSeconds * 1000)
        yield* serveSocket(socket, peer, tcpSocketOf(request)).pipe(
          Effect.provideService(PbxSettings, settings),
          Effect.provideService(PbxConnections, connections),
          Effect.catchCause((cause) => Effect.logError(`PBX connection from ${peer} failed`, cause))
        )
        return HttpServerResponse.empty()
      }).pipe(
        Effect.catchTag("HttpServerError", (error) =>
          Effect.as(
            Effect.logWarning(`PBX endpoint: a request that is not a websocket upgrade was refused: ${error.message}`),
            HttpServerResponse.text("This endpoint expects the PBX App object's websocket", { status: 426 })
          ))
      ))
  }))
}
