/**
 * The npm package's browser (test/support/browser.ts) where a system lacks the libraries it links against: with its
 * bundled libraries on LD_LIBRARY_PATH, the dynamic linker takes libnss3 and libnspr4 from the bundle, and the
 * running browser has them mapped from there while it renders a page. On this kind of machine the system has those
 * libraries, so the test asks for the bundled ones; the status page test runs whichever browser the machine picks.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { readdirSync, readFileSync, realpathSync } from "node:fs"
import { execFileSync } from "node:child_process"
import { launchChromium } from "../support/browser.ts"

const bundledLibraries = ["libnss3.so", "libnspr4.so"]

/** The browser processes this process started: children whose executable is the browser's. */
const browserChildren = (executablePath: string): ReadonlyArray<number> =>
  readdirSync("/proc").filter((name) => /^\d+$/.test(name)).map(Number).filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      return parent === process.pid && realpathSync(`/proc/${pid}/exe`) === realpathSync(executablePath)
    } catch {
      return false // the process ended while being looked at
    }
  })

describe("the npm browser with its bundled libraries", () => {
  it.live("links and maps libnss3 and libnspr4 from the bundle and renders a page", () =>
    Effect.scoped(Effect.gen(function*() {
      const { browser, choice } = yield* launchChromium({ browser: "npm", libraries: "bundled" })
      const libraryDir = choice.env["LD_LIBRARY_PATH"]?.split(":")[0]
      assert.isDefined(libraryDir, "LD_LIBRARY_PATH names the bundled libraries")

      // What the dynamic linker resolves with that environment.
      const ldd = execFileSync("ldd", [choice.executablePath], { env: { ...process.env, ...choice.env }, encoding: "utf8" })
      for (const library of bundledLibraries) {
        assert.include(ldd, `${library} => ${libraryDir}/${library}`)
      }

      const page = yield* Effect.promise(() => browser.newPage())
      yield* Effect.promise(() => page.setContent("<title>bundled</title><p id=p>rendered</p>"))
      assert.strictEqual(yield* Effect.promise(() => page.textContent("#p")), "rendered")

      // What the running browser actually loaded.
      const [pid] = browserChildren(choice.executablePath)
      assert.isDefined(pid, "the browser runs as a child of this process")
      const maps = readFileSync(`/proc/${pid}/maps`, "utf8")
      for (const library of bundledLibraries) assert.include(maps, `${libraryDir}/${library}`)
    })), { timeout: 60_000 })
})
