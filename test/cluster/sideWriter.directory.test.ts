/**
 * A PBX side's writer that routes by the user table in the store (src/cluster/StoreDirectory.ts, as a runner holding only
 * a slave's socket does), over the PBX simulator on a real socket and a real PostgreSQL: a command written before the
 * table has reached the side goes to the master (the writer's route for a user it does not know), which is not
 * connected there, and waits; once the table arrives and places the user on the slave logged in there, it is sent there.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, PubSub, Redacted, Stream, SubscriptionRef } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { storeDirectory } from "../../src/cluster/StoreDirectory.ts"
import { setPresence } from "../../src/domain/PbxPresence.ts"
import { nodeServer } from "../../src/http/Server.ts"
import { pbxServices } from "../../src/pbx/PbxLayer.ts"
import { makePbxSettings, PbxSettings } from "../../src/pbx/PbxSettings.ts"
import { PbxAppService } from "../../src/pbx/socket/PbxAppService.ts"
import { PbxConnections } from "../../src/pbx/socket/PbxConnections.ts"
import { PresenceWriter } from "../../src/pbx/writer/PresenceWriter.ts"
import { PbxSimulator, type SimUser } from "../../src/simulators/pbx/PbxSimulator.ts"
import { type PbxDirectoryRecord, StateStore, type StoredPbxUser } from "../../src/state/StateStore.ts"
import { makeUsers, password } from "../pbx/harness.ts"
import { keyEnv, newKey, openStore, tenant, withEnv } from "../state/fixtures.ts"
import { newSchemaUrl } from "../support/postgres.ts"

const alpha = tenant("alpha")
const master = "pbx-master"
const slave = "pbx-slave"

const stored = (user: SimUser): StoredPbxUser => ({
  guid: user.guid,
  h323: user.h323,
  cn: user.cn,
  dn: user.cn,
  e164: "",
  emails: [...(user.emails ?? [])],
  loc: user.loc ?? "",
  node: "",
  apps: ["teams-presence"],
  hide: false
})

describe("a PBX side's writer and the user table in the store", () => {
  it.live("a command written before the table arrived waits for the master, then goes to the slave the table names", () =>
    Effect.gen(function*() {
      const url = yield* Effect.promise(newSchemaUrl)
      const store = yield* openStore(StateStore.layerPostgres({ url: Redacted.make(url), maxConnections: 3 }).pipe(Layer.provide(withEnv(keyEnv(newKey())))))
      const settings = makePbxSettings({ appPassword: Redacted.make(password), masterPbx: master })
      const services = pbxServices(storeDirectory(alpha)).pipe(
        Layer.provideMerge(PbxSettings.layer(settings)),
        Layer.provide(Layer.succeed(StateStore, store))
      )
      const context = yield* Layer.build(
        HttpRouter.serve(PbxAppService.routes, { disableLogger: true, disableListenLog: true }).pipe(
          Layer.provideMerge(services),
          Layer.provideMerge(nodeServer({ port: 0, host: "127.0.0.1", maxFrameBytes: settings.maxFrameBytes }))
        )
      )
      const address = Context.get(context, HttpServer.HttpServer).address
      const port = address._tag === "UnixPathAddress" ? 0 : address.port
      const writer = Context.get(context, PresenceWriter)
      const connections = Context.get(context, PbxConnections)
      // Only the slave's socket reaches this side (its master is held by another runner).
      const users = makeUsers("s", 2, slave)
      yield* PbxSimulator.make({
        connectUrl: `ws://127.0.0.1:${port}${settings.path}`,
        domain: "example.com",
        pbxs: [{ name: slave, isMaster: false, password, lics: 4, appObject: "teams-presence", users }]
      })
      yield* Stream.runHead(Stream.filter(SubscriptionRef.changes(connections.states), (states) => states.get(slave)?.loggedIn === true))
      const confirmations = yield* writer.confirmations

      // The table has not reached this side: the user is unknown, the writer routes them to the master and holds them.
      const user = users[0]!.guid
      yield* writer.write(user, setPresence("away"))
      yield* writer.flush
      assert.isFalse((yield* writer.current).has(user), "nothing written while only the master would take it")

      // The master's runner publishes the table: the user is on the slave, logged in here.
      const record: PbxDirectoryRecord = {
        pbx: master,
        users: users.map(stored),
        master: { appName: "teams-presence", lics: 4, loggedIn: true },
        runner: "runner-2",
        publishedAt: 1
      }
      yield* store.directory.publish(alpha, record)
      yield* Effect.gen(function*() {
        while (!(yield* PubSub.take(confirmations)).includes(user)) {
          // other users' confirmations
        }
      }).pipe(
        Effect.timeoutOrElse({ duration: "10 seconds", orElse: () => Effect.fail(new Error("the held command never reached the slave")) })
      )
      assert.strictEqual((yield* writer.current).get(user)?.pbx, slave)
    }).pipe(Effect.scoped), 30_000)
})
