/**
 * The app service websocket endpoint the PBX's App object connects to (protocols.md §2.1–2.2): per websocket the
 * socket (SocketLink.ts), the login (Login.ts: the AppChallenge / AppLogin handshake), the registered connection
 * (PbxConnection.ts) and its message loop (MessageLoop.ts). Until the peer has logged in it may send only a few small
 * frames (FrameLimits.ts), and a source whose logins fail is answered ever more slowly, then refused for a while
 * (domain/LoginBackoff.ts).
 */
import { Clock, Deferred, Effect, Metric, Option } from "effect"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import type * as Socket from "effect/socket/Socket"
import { clip } from "../../domain/LogText.ts"
import { makeLoginBackoff } from "../../domain/LoginBackoff.ts"
import { oversizedFrames } from "../../domain/Metrics.ts"
import { PbxSettings } from "../PbxSettings.ts"
import { countEnd } from "./ConnectionEnd.ts"
import { isRawSocket, type RawSocket, watchBytes } from "./FrameLimits.ts"
import { countLogin, logIn, type LoginContext } from "./Login.ts"
import { messageLoop } from "./MessageLoop.ts"
import { makeConnection } from "./PbxConnection.ts"
import { PbxConnections } from "./PbxConnections.ts"
import type { AppLogin } from "./PbxMessages.ts"
import { openLink, type SocketLink } from "./SocketLink.ts"
import { clientAddressOf } from "../../http/ClientAddress.ts"

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

/** The peer's address (behind the front, the address the front saw), the key of its login backoff. */
const peerOf = clientAddressOf

/** Until the login succeeds the peer may send only `loginBytes` in all; past that, the finalizer reports and counts it. */
const watchLoginBytes = Effect.fnUntraced(function*(tcp: RawSocket | undefined, context: LoginContext) {
  const { settings, peer } = context
  let tooMuch: number | undefined
  const watch = tcp === undefined ? undefined : watchBytes(tcp, settings.loginBytes, (bytes) => {
    tooMuch = bytes
  })
  // A finalizer, as the server interrupts this fiber as soon as the socket is gone.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      if (tooMuch === undefined) return
      yield* countEnd("login", "refused")
      yield* Metric.update(Metric.withAttributes(oversizedFrames, { phase: "login" }), 1)
      context.backoff.fail(peer, yield* Clock.currentTimeMillis)
      yield* Effect.logError(
        `PBX connection from ${peer} closed: it sent ${tooMuch} bytes before logging in ` +
          `(at most ${settings.loginBytes} bytes are accepted before AppLogin)`
      ).pipe(Effect.annotateLogs({ logKey: `pbx-oversized:${peer}` }))
    })
  )
  return { stop: () => watch?.stop(), exceeded: () => tooMuch !== undefined }
})

/** Registers a logged-in connection; when it ends (the server interrupts on a vanished peer), unregisters it. */
const register = Effect.fnUntraced(function*(link: SocketLink, context: LoginContext, login: AppLogin) {
  const { settings, connections } = context
  const pbx = login.info?.pbx ?? login.domain
  const who = `PBX ${clip(pbx, 64)}`
  const internals = yield* makeConnection({
    id: ++connectionIds,
    pbx,
    isMaster: connections.isMaster(pbx),
    login,
    connectedAt: yield* Clock.currentTimeMillis,
    requestTimeoutMs: settings.requestTimeoutMs,
    outbound: { write: link.write, close: (reason) => link.close(1000, reason.slice(0, 100)) }
  })
  yield* link.send({ mt: "AppLoginResult", ok: true })
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      const reason = yield* Option.getOrElse(yield* Deferred.poll(link.ended), () => Effect.succeed("connection closed"))
      if (reason === link.oversized) {
        yield* Metric.update(Metric.withAttributes(oversizedFrames, { phase: "session" }), 1)
        yield* Effect.logError(`${who}: connection closed: the PBX sent ${link.oversized}`).pipe(
          Effect.annotateLogs({ fix: "Raise pbx.maxFrameBytes if the PBX's user table rows are really that large" })
        )
      }
      yield* internals.shutdown(reason)
      yield* connections.unregister(internals.connection, reason)
    })
  )
  yield* connections.register(internals.connection)
  return { who, link, internals, connections }
})

/** Serves one websocket: login, registration, then the message loop until the socket or the PBX ends it. */
const serveSocket = Effect.fnUntraced(function*(socket: Socket.Socket, tcp: RawSocket | undefined, context: LoginContext) {
  const link = yield* openLink(socket, tcp, context.settings)
  const loginBytes = yield* watchLoginBytes(tcp, context)
  const login = yield* logIn(link, context, loginBytes.exceeded)
  loginBytes.stop()
  if (Option.isNone(login)) return
  const session = yield* register(link, context, login.value)
  yield* messageLoop(session, context.settings)
  yield* Deferred.succeed(link.ended, "closed by the connector")
}, Effect.scoped)

/** A source refused for its failed logins gets no websocket at all: 429 with the time left. */
const refusedSource = Effect.fnUntraced(function*(peer: string, admission: { readonly failures: number; readonly retryAfterMillis: number }) {
  yield* countLogin("refused")
  const seconds = Math.ceil(admission.retryAfterMillis / 1000)
  yield* Effect.logWarning(`PBX connection from ${peer} refused: ${admission.failures} failed logins; refused for another ${seconds} s`).pipe(
    Effect.annotateLogs({ logKey: `pbx-login-blocked:${peer}` })
  )
  return HttpServerResponse.text("Too many failed logins from this address", { status: 429, headers: { "retry-after": String(seconds) } })
})

const notWebsocket = (error: { readonly message: string }) =>
  Effect.as(
    Effect.logWarning(`PBX endpoint: a request that is not a websocket upgrade was refused: ${clip(error.message, 200)}`).pipe(
      Effect.annotateLogs({ logKey: "pbx-not-websocket" })
    ),
    HttpServerResponse.text("This endpoint expects the PBX App object's websocket", { status: 426 })
  )

export class PbxAppService {
  /** `GET {path}`: the websocket the App object connects to. Served on the connector's HTTP server. */
  static readonly routes = HttpRouter.use(Effect.fn("PbxAppService.routes")(function*(router) {
    const settings = yield* PbxSettings
    const connections = yield* PbxConnections
    const backoff = makeLoginBackoff(settings.loginBackoff)
    const serve = Effect.fnUntraced(function*(request: HttpServerRequest.HttpServerRequest) {
      const peer = peerOf(request)
      const admission = backoff.admit(peer, yield* Clock.currentTimeMillis)
      if (admission._tag === "Refuse") return yield* refusedSource(peer, admission)
      const socket = yield* request.upgrade
      enableTcpKeepAlive(request, settings.keepAliveSeconds * 1000)
      yield* serveSocket(socket, tcpSocketOf(request), { settings, connections, backoff, peer }).pipe(
        Effect.catchCause((cause) => Effect.logError(`PBX connection from ${peer} failed`, cause))
      )
      return HttpServerResponse.empty()
    }, Effect.catchTag("HttpServerError", notWebsocket))
    yield* router.add("GET", settings.path as HttpRouter.PathInput, serve)
  }))
}
