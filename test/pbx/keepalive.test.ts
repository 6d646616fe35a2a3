/** KeepAlive both ways: the connector sends one after the configured idle time; one from the PBX is accepted silently. */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { PbxSimulator } from "../../src/simulators/pbx/PbxSimulator.ts"
import { allLoggedIn, makeUsers, password, startConnector } from "./harness.ts"

describe("KeepAlive", () => {
  it.live("an idle connection gets KeepAlives from the connector; the PBX's own KeepAlive leaves it up", () =>
    Effect.scoped(Effect.gen(function*() {
      const connector = yield* startConnector({ keepAliveSeconds: 1 })
      const sim = yield* PbxSimulator.make({
        connectUrl: connector.url,
        domain: "example.com",
        reconnectDelayMs: 100,
        pbxs: [{ name: "pbx-master", isMaster: true, password, lics: 2, appObject: "teams-presence", users: makeUsers("k", 2, "pbx-master") }]
      })
      yield* connector.waitStates(allLoggedIn(["pbx-master"]))
      yield* sim.sendRaw("pbx-master", JSON.stringify({ mt: "KeepAlive" }))
      const status = yield* sim.waitFor(() => {
        const master = sim.peek.status().find((s) => s.name === "pbx-master")
        return master !== undefined && master.keepAlivesReceived >= 2 ? master : undefined
      }, 10_000)
      assert.isTrue(status.connected && status.loggedIn)
      assert.strictEqual(status.logins, 1) // never dropped in between
      assert.notInclude(connector.logs.join("\n"), "KeepAlive")
    })))
})
