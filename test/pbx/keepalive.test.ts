/**
 * KeepAlive goes from the AppWebsocket client to the server (docs/protocol-notes.md): the PBX sends it, the connector
 * never does. The PBX's KeepAlives are accepted silently and leave the connection up.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { PbxSimulator } from "../../src/simulators/pbx/PbxSimulator.ts"
import { makeUsers, password, startConnector } from "./harness.ts"

describe("KeepAlive", () => {
  it.live("the PBX's KeepAlives on an idle connection are accepted; the connector sends none", () =>
    Effect.scoped(Effect.gen(function*() {
      // A short TCP keep-alive idle time: before the fix the same setting made the connector send KeepAlive messages.
      const connector = yield* startConnector({ keepAliveSeconds: 0.1 })
      const sim = yield* PbxSimulator.make({
        connectUrl: connector.url,
        domain: "example.com",
        reconnectDelayMs: 100,
        keepAliveMs: 150,
        pbxs: [{ name: "pbx-master", isMaster: true, password, lics: 0, appObject: "teams-presence", users: makeUsers("k", 2, "pbx-master") }]
      })
      yield* connector.directory.ready
      const status = yield* sim.waitFor(() => {
        const master = sim.peek.status().find((s) => s.name === "pbx-master")
        return master !== undefined && master.keepAlivesSent >= 4 ? master : undefined
      }, 10_000)
      assert.isTrue(status.connected && status.loggedIn)
      assert.strictEqual(status.logins, 1) // never dropped in between
      assert.strictEqual(status.keepAlivesReceived, 0)
      assert.notInclude(connector.logs.join("\n"), "KeepAlive")
    })))
})
