/**
 * The cluster demo as an administrator starts it (`teams-presence-connector demo --cluster`): its own embedded
 * PostgreSQL, three runner processes behind the front, four simulated tenants. It prints the status page's address,
 * every tenant reaches green through the front, and SIGTERM stops it cleanly: exit 0, no runner left behind, its
 * PostgreSQL and its directory gone.
 */
import { assert, describe, it } from "@effect/vitest"
import { existsSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { mkdtempSync } from "node:fs"
import { Effect } from "effect"
import { startProcess } from "../support/processes.ts"
import { isAlive as alive } from "../support/node.ts"
import { basicAuth, freePort, until } from "../support/waiting.ts"


describe("cluster demo", () => {
  it.live("starts PostgreSQL, three runners, a front and four tenants; all green; SIGTERM stops everything", () =>
    Effect.scoped(Effect.gen(function*() {
      const port = yield* freePort
      const logFile = join(mkdtempSync(join(tmpdir(), "tpc-cluster-demo-test-")), "demo.log")
      const demo = yield* startProcess("node src/main.ts", ["demo", "--cluster", "--port", String(port)], logFile)
      const banner = yield* until("the demo's banner", Effect.sync(() => {
        const text = readFileSync(logFile, "utf8")
        return text.includes("Ctrl-C stops everything.") ? text : undefined
      }), 90_000)

      const statusPages = [...banner.matchAll(/(http:\/\/127\.0\.0\.1:\d+\/(?:t\/[a-z]+\/)?)\s+\(tenant (\w+)/g)].map((m) => ({ url: m[1]!, tenant: m[2]! }))
      assert.deepStrictEqual(statusPages.map((p) => p.tenant), ["default", "alpha", "bravo", "charlie"])
      assert.isTrue(statusPages.every((p) => p.url.startsWith(`http://127.0.0.1:${port}/`)), "every status page is behind the front")
      const password = /user \/ password: admin \/ (\S+)/.exec(banner)![1]!
      const runnerPids = [...banner.matchAll(/runner-\d+\s+pid (\d+)/g)].map((m) => Number(m[1]))
      const demoDir = /log (\S+)\/runner-1\.log/.exec(banner)![1]!
      assert.strictEqual(runnerPids.length, 3)

      // Every tenant green, its status read through the front (whichever runner owns it).
      for (const page of statusPages) {
        yield* until(`tenant ${page.tenant} green`, Effect.promise(async () => {
          const response = await fetch(`${page.url}api/status`, { headers: { authorization: basicAuth(password) } }).catch(() => undefined)
          if (response?.status !== 200) return undefined
          const status = (await response.json()) as { lights: Record<string, { state: string }> }
          return Object.values(status.lights).every((light) => light.state === "green") ? true : undefined
        }), 90_000)
      }

      demo.child.kill("SIGTERM")
      const exit = yield* Effect.promise(() => demo.exited)
      assert.deepStrictEqual(exit, { code: 0, signal: null })
      for (const pid of runnerPids) assert.isFalse(alive(pid), `runner ${pid} stopped`)
      assert.isFalse(existsSync(demoDir), "the demo's directory is removed")
      const log = readFileSync(logFile, "utf8")
      assert.notInclude(log, "did not start")
    })), 180_000)
})
