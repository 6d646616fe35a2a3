/**
 * Two runners' PBX sides of one tenant on one PostgreSQL, as PbxSide.ts assembles them (the sender of
 * DesiredPresence.ts over the real writer), for the tests of a user's command moving between PBXs
 * (userFence.test.ts, userMoves.test.ts).
 */
import { Context, Effect, Layer, Logger, Redacted, Stream, SubscriptionRef } from "effect"
import { HttpServer } from "effect/http"
import { DesiredWakeups, desiredPresenceSender } from "../../src/cluster/DesiredPresence.ts"
import { directoryViaStore } from "../../src/cluster/StoreDirectory.ts"
import { serveRoutes } from "../../src/http/Server.ts"
import { pbxServices } from "../../src/pbx/PbxLayer.ts"
import { makePbxSettings, PbxSettings } from "../../src/pbx/PbxSettings.ts"
import { PbxAppService } from "../../src/pbx/socket/PbxAppService.ts"
import { PbxConnections } from "../../src/pbx/socket/PbxConnections.ts"
import { PresenceWriter } from "../../src/pbx/writer/PresenceWriter.ts"
import { PbxSimulator, type SetPresenceRecord } from "../../src/simulators/pbx/PbxSimulator.ts"
import { StateStore } from "../../src/state/StateStore.ts"
import { makeUsers, password } from "../pbx/harness.ts"
import { keyEnv, newKey, openStore, tenant, withEnv } from "../state/fixtures.ts"
import { newSchemaUrl } from "../support/postgres.ts"
import { makeRecordedWaits } from "../support/waiting.ts"

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

/**
 * A store on its own PostgreSQL schema, both sides, and the PBX simulator's master (2 users) logged in on side 1 and
 * its slave (`slaveCount` users) on side 2; `written` matches an accepted SetPresence in the simulator's log.
 */
export const twoSideScene = Effect.fnUntraced(function*(slaveCount: number) {
  const { recorded, until } = makeRecordedWaits()
  const url = yield* Effect.promise(newSchemaUrl)
  const store = yield* openStore(StateStore.layerPostgres({ url: Redacted.make(url), maxConnections: 6 }).pipe(Layer.provide(withEnv(keyEnv(newKey())))))
  const services = yield* Layer.build(DesiredWakeups.layer(["runner-1", "runner-2"]).pipe(Layer.provideMerge(Layer.succeed(StateStore, store))))
  const side1 = yield* startSide("runner-1", services, recorded)
  const side2 = yield* startSide("runner-2", services, recorded)
  const masterUsers = makeUsers("m", 2, master)
  const slaveUsers = makeUsers("s", slaveCount, slave)
  const sim = yield* PbxSimulator.make({
    connectUrl: side1.url,
    domain: "example.com",
    pbxs: [
      { name: master, isMaster: true, password, lics: 8, appObject: "teams-presence", users: masterUsers },
      { name: slave, isMaster: false, password, lics: 8, appObject: "teams-presence", users: slaveUsers, connectUrl: side2.url }
    ]
  })
  yield* side1.waitLoggedIn(master)
  yield* side2.waitLoggedIn(slave)
  const log = () => sim.peek.setPresenceLog()
  const written = (pbx: string, guid: string, activity: string) => (record: SetPresenceRecord) =>
    record.accepted && record.pbx === pbx && record.guid === guid && record.activity === activity
  return { store, services, side1, side2, sim, log, written, until, masterUsers, slaveUsers }
})
