import { assert, describe, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import { request } from "node:http"
import { join } from "node:path"
import { Context, Effect, Layer } from "effect"
import { HttpServer } from "effect/http"
import { backlogWarning, effectiveBacklog, publicBacklog, somaxconn } from "../../src/http/Listen.ts"
import { serveRoutes } from "../../src/http/Server.ts"
import { tempDirSync } from "../support/tempDir.ts"

/** The size of the accept queue of the socket listening on `port` (Linux `ss`: Send-Q of its LISTEN line). */
const listenBacklogOf = (port: number): number | undefined => {
  const line = execFileSync("ss", ["-ltnH", `sport = :${port}`], { encoding: "utf8" }).trim().split("\n")[0]
  return line === undefined || line === "" ? undefined : Number(line.trim().split(/\s+/)[2])
}

const hasSs = (() => {
  try {
    execFileSync("ss", ["-V"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()

describe("the public port's listen queue", () => {
  it("asks for more than Node's 511 and is capped by the kernel's somaxconn", () => {
    assert.isAbove(publicBacklog, 511)
    assert.strictEqual(effectiveBacklog(128), 128)
    assert.strictEqual(effectiveBacklog(65_535), publicBacklog)
    assert.strictEqual(effectiveBacklog(undefined), publicBacklog)
  })

  it("warns with the setting to raise only when the kernel caps it below what is asked", () => {
    const warning = backlogWarning(128)
    assert.isDefined(warning)
    assert.include(warning!, "net.core.somaxconn")
    assert.include(warning!, "128")
    assert.isUndefined(backlogWarning(publicBacklog))
    assert.isUndefined(backlogWarning(undefined))
  })

  it("reads somaxconn, and nothing from a file that is missing or not a number", () => {
    const dir = tempDirSync("tpc-listen-")
    const file = join(dir, "somaxconn")
    writeFileSync(file, "4096\n")
    assert.strictEqual(somaxconn(file), 4096)
    writeFileSync(file, "many\n")
    assert.isUndefined(somaxconn(file))
    assert.isUndefined(somaxconn(join(dir, "absent")))
  })

  it.effect.skipIf(!hasSs)("the server listens with that queue and keeps connections alive", () =>
    Effect.scoped(Effect.gen(function*() {
      const context = yield* Layer.build(serveRoutes(Layer.empty, { host: "127.0.0.1", port: 0 }))
      const address = Context.get(context, HttpServer.HttpServer).address
      const port = address._tag === "UnixPathAddress" ? 0 : address.port
      assert.strictEqual(listenBacklogOf(port), effectiveBacklog(somaxconn()))
      const headers = yield* Effect.promise(() =>
        new Promise<Record<string, unknown>>((resolve, reject) => {
          const req = request({ host: "127.0.0.1", port, path: "/nothing", headers: { connection: "keep-alive" } }, (res) => {
            res.resume()
            res.once("end", () => resolve(res.headers))
          })
          req.once("error", reject)
          req.end()
        })
      )
      assert.strictEqual(headers["connection"], "keep-alive")
      assert.strictEqual(headers["keep-alive"], "timeout=65")
    })))
})
