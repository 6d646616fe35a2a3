/**
 * The app service websocket endpoint the PBX's App object connects to (protocols.md §2.1–2.2): the AppChallenge /
 * AppLogin handshake (Handshake.ts), then the message loop of one logged-in PBX. Bad frames are logged and ignored;
 * they never close a healthy connection. Until the peer has logged in it may send only a few small frames
 * (FrameLimits.ts), and a source whose logins fail is answered ever more slowly, then refused for a while
 * (domain/LoginBackoff.ts).
 */
import { Cause, Clock, Deferred, Effect, Metric, Option, PubSub, Queue, Schema } from "effect"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import * as Socket from "effect/socket/Socket"
import { clip } from "../../domain/LogText.ts"
import { type LoginBackoff, makeLoginBackoff } from "../../domain/LoginBackoff.ts"
import { loginFailures, oversizedFrames } from "../../domain/Metrics.ts"
import { type ConnectionEnd, countEnd, describeEnd, logAndCount } from "./ConnectionEnd.ts"
import { endedByOversizedFrame, isRawSocket, type RawSocket, watchBytes } from "./FrameLimits.ts"
import { type Frame, handshake, preview, readFrame } from "./Handshake.ts"
import { corkPerTick, makeConnection, type PbxMessage } from "./PbxConnection.ts"
import { PbxConnections } from "./PbxConnections.ts"
import { PbxInfo } from "./PbxMessages.ts"
import { PbxSettings } from "../PbxSettings.ts"

const decodePbxInfo = Schema.decodeUnknownResult(PbxInfo)

const countLogin = (outcome: "failed" | "refused") =>
  Metric.update(Metric.withAttributes(loginFailures, { endpoint: "pbx", outcome }), 1)

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
const tcpSocketOf = (request: HttpServerRequest.HttpServerRequest): RawSocket | undefined => {
  const socket: unknown = (request.source as { readonly socket?: unknown }).socket
  return isRawSocket(socket) ? socket : undefined
}

/** The peer's address, the key of its login backoff. */
const peerOf = (request: HttpServerRequest.HttpServerRequest): string =>
  request.remoteAddress._tag === "Some" ? clip(request.remoteAddress.value, 64) : "unknown address"

/** Serves one websocket: handshake, registration, then the message loop until the socket or the PBX ends it. */
const serveSocket = (socket: Socket.Socket, peer: string, tcp: RawSocket | undefined, backoff: LoginBackoff) =>
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
    // Until the login succeeds, the peer may send only `loginBytes` in all.
    let tooMuchBeforeLogin: number | undefined
    const loginWatch = tcp === undefined ? undefined : watchBytes(tcp, settings.loginBytes, (bytes) => {
      tooMuchBeforeLogin = bytes
    })
    const oversized = `a frame over the limit of ${settings.maxFrameBytes} bytes (pbx.maxFrameBytes)`
    // A finalizer, as the server interrupts this fiber as soon as the socket is gone.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        if (tooMuchBeforeLogin === undefined) return
        yield* countEnd("login", "refused")
        yield* Metric.update(Metric.withAttributes(oversizedFrames, { phase: "login" }), 1)
        backoff.fail(peer, yield* Clock.currentTimeMillis)
        yield* Effect.logError(
          `PBX connection from ${peer} closed: it sent ${tooMuchBeforeLogin} bytes before logging in ` +
            `(at most ${settings.loginBytes} bytes are accepted before AppLogin)`
        ).pipe(Effect.annotateLogs({ logKey: `pbx-oversized:${peer}` }))
      })
    )

    // The reader turns socket batches into single frames; any socket end, clean or not, ends the frame queue.
    yield* Effect.gen(function*() {
      while (true) {
        const batch = yield* pull
        for (const text of batch) yield* Queue.offer(frames, text)
      }
    }).pipe(
      Effect.catchCause((cause) => {
        socketEnd = endedByOversizedFrame(cause)
          ? { reason: "socket_error", text: oversized }
          : describeEnd(cause, [settings.appPassword])
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
              kind: "timeout",
              fix: "Check that the App object's URL points at this connector and that its Websocket checkmark is set"
            } as const
          )
      }),
      Effect.catchCause((cause) => Effect.succeed({ _tag: "Broken", cause } as const))
    )
    loginWatch?.stop()
    if (outcome._tag === "Broken") {
      // Too much before login: the finalizer above says so.
      if (tooMuchBeforeLogin !== undefined) return
      // The frame queue ends when the socket does: the socket's own end is the real cause, else the handshake's.
      return yield* logAndCount("login", `PBX connection from ${peer}`, socketEnd ?? describeEnd(outcome.cause, [settings.appPassword]))
    }
    if (outcome._tag === "Refused") {
      yield* countEnd("login", outcome.kind === "timeout" ? "timeout" : "refused")
      const failure = outcome.kind === "timeout" ? undefined : backoff.fail(peer, yield* Clock.currentTimeMillis)
      if (failure !== undefined) yield* countLogin("failed")
      yield* Effect.logError(`PBX login refused (${peer}): ${outcome.reason}. ${outcome.fix}`).pipe(
        Effect.annotateLogs({ logKey: `pbx-login-refused:${peer}`, fix: outcome.fix })
      )
      if (failure?.refusedNow === true) {
        yield* Effect.logWarning(
          `PBX logins from ${peer} are refused for ${Math.round(settings.loginBackoff.refuseMillis / 60_000)} min after ${failure.failures} failed logins`
        ).pipe(Effect.annotateLogs({ logKey: `pbx-login-blocked:${peer}` }))
      }
      if (outcome.pbx !== peer) yield* connections.reportError(outcome.pbx, { message: outcome.reason, fix: outcome.fix })
      // The answer to a failed login waits longer with every failure from this source.
      if (failure !== undefined) yield* Effect.sleep(failure.delayMillis)
      yield* send({ mt: "AppLoginResult", ok: false })
      yield* closeSocket(4001, "login refused")
      return
    }
    backoff.succeed(peer)

    const login = outcome.login
    const pbx = login.info?.pbx ?? login.domain
    const who = `PBX ${clip(pbx, 64)}`
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
        if (reason === oversized) {
          yield* Metric.update(Metric.withAttributes(oversizedFrames, { phase: "session" }), 1)
          yield* Effect.logError(`${who}: connection closed: the PBX sent ${oversized}`).pipe(
            Effect.annotateLogs({ fix: "Raise pbx.maxFrameBytes if the PBX's user table rows are really that large" })
          )
        }
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
              return yield* Effect.logWarning(`${who}: ignored a malformed PbxInfo: ${clip(info.failure.message, 200)}`)
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
        yield* Effect.logWarning(`${who}: ignored an unexpected ${clip(envelope.mt, 40)}: ${preview(frame.text)}`).pipe(
          Effect.annotateLogs({ logKey: `pbx-unexpected:${who}` })
        )
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
        yield* Effect.logError(`${who}: the message loop failed, closing the connection: ${clip(end.text, 300)}`)
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
    const backoff = makeLoginBackoff(settings.loginBackoff)
    yield* router.add("GET", settings.path as HttpRouter.PathInput, (request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function*() {
        const peer = peerOf(request)
        // A source refused for its failed logins gets no websocket at all.
        const admission = backoff.admit(peer, yield* Clock.currentTimeMillis)
        if (admission._tag === "Refuse") {
          yield* countLogin("refused")
          const seconds = Math.ceil(admission.retryAfterMillis / 1000)
          yield* Effect.logWarning(`PBX connection from ${peer} refused: ${admission.failures} failed logins; refused for another ${seconds} s`).pipe(
            Effect.annotateLogs({ logKey: `pbx-login-blocked:${peer}` })
          )
          return HttpServerResponse.text("Too many failed logins from this address", {
            status: 429,
            headers: { "retry-after": String(seconds) }
          })
        }
        const socket = yield* request.upgrade
        enableTcpKeepAlive(request, settings.keepAliveSeconds * 1000)
        yield* serveSocket(socket, peer, tcpSocketOf(request), backoff).pipe(
          Effect.provideService(PbxSettings, settings),
          Effect.provideService(PbxConnections, connections),
          Effect.catchCause((cause) => Effect.logError(`PBX connection from ${peer} failed`, cause))
        )
        return HttpServerResponse.empty()
      }).pipe(
        Effect.catchTag("HttpServerError", (error) =>
          Effect.as(
            Effect.logWarning(`PBX endpoint: a request that is not a websocket upgrade was refused: ${clip(error.message, 200)}`).pipe(
              Effect.annotateLogs({ logKey: "pbx-not-websocket" })
            ),
            HttpServerResponse.text("This endpoint expects the PBX App object's websocket", { status: 426 })
          ))
      ))
  }))
}
