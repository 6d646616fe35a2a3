/**
 * SocketLink's writes over a real websocket (the `ws` server's socket under effect's websocket, as the PBX endpoint
 * has it): a write never waits on a socket that ended — neither once the peer has closed it nor once the link's scope
 * has released it while the connection is still being torn down.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Option, Redacted, Scope } from "effect"
import * as Socket from "effect/socket/Socket"
import { WebSocketServer, type WebSocket } from "ws"
import { makePbxSettings } from "../../src/pbx/PbxSettings.ts"
import { openLink } from "../../src/pbx/socket/SocketLink.ts"
import { rawClient } from "./harness.ts"

const settings = makePbxSettings({ appPassword: Redacted.make("secret"), masterPbx: "pbx-master" })

/** A websocket server on a free port, and the server side of its first connection. */
const serverSide = Effect.gen(function*() {
  const server = yield* Effect.acquireRelease(
    Effect.callback<WebSocketServer>((resume) => {
      const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" })
      wss.once("listening", () => resume(Effect.succeed(wss)))
    }),
    (wss) => Effect.callback<void>((resume) => wss.close(() => resume(Effect.void)))
  )
  const accepted = yield* Deferred.make<WebSocket>()
  server.once("connection", (ws) => Deferred.doneUnsafe(accepted, Effect.succeed(ws)))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  const client = yield* rawClient(`ws://127.0.0.1:${port}`)
  const ws = yield* Deferred.await(accepted)
  return { client, socket: yield* Socket.fromWebSocket(Effect.succeed(ws)) }
})

/** Runs a write; None when it was still waiting after a second. */
const writeWithin = (write: Effect.Effect<void>) => Effect.timeoutOption(write, 1000)

describe("SocketLink writes", () => {
  it.live("a write once the link's scope has released the socket returns at once and sends nothing", () =>
    Effect.gen(function*() {
      const { client, socket } = yield* serverSide
      const scope = yield* Scope.make()
      const link = yield* openLink(socket, undefined, settings).pipe(Scope.provide(scope))
      yield* link.write("before")
      yield* client.next((frame) => frame === "before")
      yield* Scope.close(scope, Exit.void)
      assert.isTrue(Option.isSome(yield* writeWithin(link.write("after"))), "the write waited on a released socket")
      assert.isTrue(Option.isSome(yield* writeWithin(link.send({ mt: "SetPresence" }))))
      yield* Effect.sleep(50)
      assert.deepStrictEqual(client.received, ["before"])
    }).pipe(Effect.scoped))

  it.live("a write after the peer closed the socket returns at once", () =>
    Effect.gen(function*() {
      const { client, socket } = yield* serverSide
      const link = yield* openLink(socket, undefined, settings)
      client.socket.close(1000, "bye")
      const reason = yield* Deferred.await(link.ended)
      assert.match(reason, /1000/)
      assert.isTrue(Option.isSome(yield* writeWithin(link.write("late"))), "the write waited on an ended socket")
      assert.deepStrictEqual(client.received, [])
    }).pipe(Effect.scoped))
})
