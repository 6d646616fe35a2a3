/**
 * The websocket under one PBX connection. Inbound: a reader turns socket batches into single frames and, when the
 * socket ends (cleanly or not), records why and ends the frame queue. Outbound: frames written in one tick leave
 * together (one syscall per wave of SetPresence, not one per frame), and nothing waits on a socket that has ended.
 */
import { type Cause, Deferred, Effect, Queue, type Scope } from "effect"
import * as Socket from "effect/socket/Socket"
import type { PbxSettingsOptions } from "../PbxSettings.ts"
import { type ConnectionEnd, describeEnd } from "./ConnectionEnd.ts"
import { endedByOversizedFrame, type RawSocket } from "./FrameLimits.ts"
import type { PbxMessage } from "./PbxMessages.ts"

/** The parts of a Node stream that hold writes back: `cork` buffers, `uncork` sends what was buffered in one write. */
export interface Corkable {
  readonly cork: () => void
  readonly uncork: () => void
}

/**
 * Holds a stream's writes until the end of the current tick, so that the frames written in one tick (a wave of
 * SetPresence requests) leave in one `writev` instead of one syscall each. Call the returned function right before
 * each write; the first call in a tick corks, a `process.nextTick` uncorks. Corks nest, so the websocket library's own
 * cork/uncork around each frame only adds to ours. Order is kept (the stream's buffer is FIFO) and errors surface on
 * the stream as before. Without a stream (a request not served by Node's HTTP server) writes go out as they come.
 */
export const corkPerTick = (stream: Corkable | undefined): (() => void) => {
  if (stream === undefined) return () => {}
  let corked = false
  const release = () => {
    corked = false
    stream.uncork()
  }
  return () => {
    if (corked) return
    corked = true
    stream.cork()
    process.nextTick(release)
  }
}

export interface SocketLink {
  /** The frames the peer sent, in order; ends when the socket ends or `close` is called. */
  readonly frames: Queue.Queue<string, Cause.Done>
  /** Completed with a description when the socket has ended. */
  readonly ended: Deferred.Deferred<string>
  /** How the socket ended, once it has: the real cause behind the end of `frames`. */
  readonly end: () => ConnectionEnd | undefined
  /** The text of the end when the peer sent a frame over `pbx.maxFrameBytes`. */
  readonly oversized: string
  readonly write: (text: string) => Effect.Effect<void>
  readonly send: (message: PbxMessage) => Effect.Effect<void>
  /** Ends the frame queue first; the close frame is best effort, as a dead peer would never take it. */
  readonly close: (code: number, reason: string) => Effect.Effect<void>
}

export const openLink = Effect.fnUntraced(function*(
  socket: Socket.Socket,
  tcp: RawSocket | undefined,
  settings: PbxSettingsOptions
): Effect.fn.Return<SocketLink, Socket.SocketError, Scope.Scope> {
  const pull = yield* Socket.readerString(socket)
  const writer = yield* socket.writer
  const frames = yield* Queue.unbounded<string, Cause.Done>()
  const ended = yield* Deferred.make<string>()
  const oversized = `a frame over the limit of ${settings.maxFrameBytes} bytes (pbx.maxFrameBytes)`
  let end: ConnectionEnd | undefined

  yield* Effect.forever(Effect.flatMap(pull, (batch) => Queue.offerAll(frames, batch)), { disableYield: true }).pipe(
    Effect.catchCause((cause) => {
      end = endedByOversizedFrame(cause) ? { reason: "socket_error", text: oversized } : describeEnd(cause, [settings.appPassword])
      return Effect.andThen(Deferred.succeed(ended, end.text), Queue.end(frames))
    }),
    Effect.forkScoped
  )

  // Effect's websocket writer sends at once (`ws.send`, which never waits, also on a closed socket) while a reader
  // holds the socket, and waits only for a reader to come: before the reader above was taken, or once this scope has
  // released it. This finalizer, added after the reader, runs before that release; from then on writes are dropped.
  // So a write never waits on a socket that ended, without racing each write against the end in forked fibers.
  let released = false
  yield* Effect.addFinalizer(() => Effect.sync(() => void (released = true)))

  const hold = corkPerTick(tcp)
  const write = (text: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (released || Deferred.isDoneUnsafe(ended)) return Effect.void
      hold()
      return Effect.ignore(writer.write(text))
    })
  return {
    frames,
    ended,
    end: () => end,
    oversized,
    write,
    send: (message) => write(JSON.stringify(message)),
    close: (code, reason) =>
      Effect.andThen(
        Queue.end(frames),
        Effect.raceFirst(Effect.ignore(writer.write(new Socket.CloseEvent(code, reason))), Deferred.await(ended)).pipe(
          Effect.timeoutOption(1000),
          Effect.asVoid
        )
      )
  }
})
