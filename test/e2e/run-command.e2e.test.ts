/**
 * The production path: `teams-presence-connector run --config connector.yaml` as its own process, pointed at the
 * standalone simulators (as an administrator would try it before going live). Ready when all lights are green,
 * presences flow, SIGTERM stops it cleanly with exit code 0, and no secret reaches its log.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { readFileSync, writeFileSync, openSync } from "node:fs"
import { join } from "node:path"
import { Effect, Redacted } from "effect"
import * as YAML from "yaml"
import { connectorSnippet, startGraphSimulator } from "../../src/simulators/graph/Standalone.ts"
import { startPbxSimulator } from "../../src/simulators/pbx/Standalone.ts"
import { loadPopulation } from "../../src/simulators/UsersFile.ts"
import { freePort, until } from "../support/waiting.ts"
import { teamsEntry } from "../support/pbxPresence.ts"
import { makeTempDir } from "../support/tempDir.ts"

const main = join(import.meta.dirname, "../../src/main.ts")
const pbxPassword = "run-test-app-object-password"
const adminPassword = "run-test-admin-password"

describe("run command", () => {
  it.live("a real process against the standalone simulators: ready, presences flow, SIGTERM → exit 0, no secrets logged", () =>
    Effect.scoped(Effect.gen(function*() {
      const population = yield* loadPopulation({ users: 4 })
      const graph = yield* startGraphSimulator({ port: 0, host: "127.0.0.1", users: 4 })
      const port = yield* freePort
      const dir = yield* makeTempDir("tpc-run-")
      const config = {
        ...(YAML.parse(connectorSnippet(graph.url, population)) as Record<string, unknown>),
        notifications: { mode: "push", publicBaseUrl: `http://127.0.0.1:${port}` },
        pbx: { masterPbx: population.pbxs.find((p) => p.master)!.name, appPassword: pbxPassword },
        http: { host: "127.0.0.1", port },
        admin: { password: adminPassword },
        dataDir: join(dir, "data"),
        log: { format: "json", level: "debug" }
      }
      const configFile = join(dir, "connector.yaml")
      writeFileSync(configFile, YAML.stringify(config))
      const logFile = join(dir, "connector.log")
      const out = openSync(logFile, "w")
      const child = spawn(process.execPath, [main, "run", "--config", configFile], { stdio: ["ignore", out, out] })
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
      yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))

      const pbx = yield* startPbxSimulator({
        connect: `ws://127.0.0.1:${port}/pbx`,
        password: Redacted.make(pbxPassword),
        users: 4,
        controlPort: 0,
        reconnectDelayMs: 200
      })
      yield* until("/readyz 200", Effect.promise(() => fetch(`http://127.0.0.1:${port}/readyz`).then((r) => (r.status === 200 ? true : undefined), () => undefined)), 30_000)

      const person = population.people[1]!
      yield* graph.setPresence(person.graphId, { availability: "Busy", activity: "InAMeeting" })
      const guid = (yield* pbx.users).find((u) => (u.emails ?? []).includes(person.email))!.guid
      yield* until("the presence in the PBX", Effect.map(pbx.presence(guid), (list) => teamsEntry(list)?.activity === "meeting" ? list : undefined))

      child.kill("SIGTERM")
      const code = yield* Effect.promise(() => exited)
      assert.strictEqual(code, 0)

      const log = readFileSync(logFile, "utf8")
      assert.include(log, "light masterPbx is green")
      const secrets = [Redacted.value(population.clientSecret), pbxPassword, adminPassword, ...population.accounts.flatMap((a) => a.password ? [Redacted.value(a.password)] : [])]
      for (const secret of secrets) assert.notInclude(log, secret)
    })), 90_000)
})
