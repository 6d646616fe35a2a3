/**
 * Two runners' PBX sides of one tenant on one PostgreSQL, as PbxSide.ts assembles them (the sender of
 * DesiredPresence.ts over the real writer), for the tests of a user's command moving between PBXs
 * (userFence.test.ts, userMoves.test.ts).
 */
import { Context, Effect, Layer, Logger, Redacted, Stream, SubscriptionRef } from "effect"
import { HttpServer } from "effect/http"
import { type DesiredWakeups, desiredPresenceSender } from "../../src/cluster/DesiredPresence.ts"
import { directoryViaStore } from "../../src/cluster/StoreDirectory.ts"
import { serveRoutes } from "../../src/http/Server.ts"
import { pbxServices } from "../../src/pbx/PbxLayer.ts"
import { makePbxSettings, PbxSettings } from "../../src/pbx/PbxSettings.ts"
import { PbxAppService } from "../../src/pbx/socket/PbxAppService.ts"
import { PbxConnections } from "../../src/pbx/socket/PbxConnections.ts"
import { PresenceWriter } from "../../src/pbx/writer/PresenceWriter.ts"
import type { StateStore } from "../../src/state/StateStore.ts"
import { password } from "../pbx/harness.ts"
import { tenant } from "../state/fixtures.ts"

export const alpha = tenant("alpha")
export const master = "pbx-master"
export const slave = "pbx-slave"
export const settings = makePbxSettings({ appPassword: Redacted.make(password), masterPbx: master })

/** Runner `runner`'s PBX side of tenant alpha on a loopback port, its log lines recorded (`recorded` after each). */
export const startSide = Effect.fnUntraced(function*(
  runner: string,
  services: Context.Context<StateStore | DesiredWakeups>,
  recorded: () => void
) {
  const logs: Array<string> = []
  const capture = Logger.make(({ message }) => {
    logs.push(Array.isArray(message) ? message.map(String).join(" ") : String(message))
    recorded()
  })
  const side = desiredPresenceSender(alpha, runner).pipe(
    Layer.provideMerge(pbxServices(directoryViaStore(alpha, runner))),
    Layer.provideMerge(PbxSettings.layer(settings))
  )
  const server = serveRoutes(PbxAppService.routes, { host: "127.0.0.1", port: 0, maxFrameBytes: settings.maxFrameBytes })
  const context = yield* Layer.build(server.pipe(Layer.provideMerge(side))).pipe(
    Effect.provideContext(services),
    Effect.provide(Logger.layer([capture], { mergeWithExisting: false }))
  )
  const address = Context.get(context, HttpServer.HttpServer).address
  const port = "port" in address ? address.port : 0
  const connections = Context.get(context, PbxConnections)
  return {
    url: `ws://127.0.0.1:${port}${settings.path}`,
    logs,
    writer: Context.get(context, PresenceWriter),
    loggedIn: Effect.map(SubscriptionRef.get(connections.states), (states) =>
      [...states].filter(([, state]) => state.loggedIn).map(([pbx]) => pbx)),
    waitLoggedIn: (pbx: string) =>
      Stream.runHead(Stream.filter(SubscriptionRef.changes(connections.states), (states) => states.get(pbx)?.loggedIn === true))
  }
})
