/**
 * The status page in a real browser (headless Chromium through playwright-core: Debian's where installed, else the
 * npm package's; test/support/browser.ts) against the embedded demo:
 * all lights go green, a presence changed through the Graph simulator's HTTP control API reaches its row without a
 * reload, and the page is refused without the password. (Its layout and screenshots: status-page.layout.browser.test.ts.)
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { createServer } from "node:net"
import { join } from "node:path"
import type { Browser, BrowserContextOptions, Page } from "playwright-core"
import { startDemo } from "../../src/demo/Demo.ts"
import { mappingScene, type SceneEntry, launchChromium } from "../support/browser.ts"
import { makeTempDir } from "../support/tempDir.ts"

const password = "browser-test-password"
const waitMillis = 30_000

/**
 * A port the OS has just handed out. startDemo takes `port: 0` but then tells Graph `http://127.0.0.1:0` as the
 * notification URL, so subscription validation fails; until it derives the URL from the bound port, the test
 * passes an ephemeral port it asked the OS for.
 */
const ephemeralPort = Effect.callback<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

const browserContext = (browser: Browser, options: BrowserContextOptions) =>
  Effect.acquireRelease(
    Effect.promise(() => browser.newContext(options)),
    (context) => Effect.promise(() => context.close())
  )

/** Teams presences set through the simulator's control API, with what the default mapping writes for them. */
const scene: ReadonlyArray<SceneEntry> = [["Available", "Available", "clear"], ...mappingScene]

/** Sets a presence the way an operator would: `PUT /_sim/presences/{id}` on the Graph simulator. */
const setPresence = Effect.fn("setPresence")(function*(graphUrl: string, id: string, availability: string, activity: string) {
  const response = yield* Effect.promise(() =>
    fetch(`${graphUrl}/_sim/presences/${encodeURIComponent(id)}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ availability, activity })
    })
  )
  assert.isTrue(response.ok, `the simulator's control API answered ${response.status} for ${id}`)
})

/** Waits until the user's row shows the activity and what was written to the PBX (the page is not reloaded). */
const waitForRow = (page: Page, id: string, written: string, activity: string) =>
  Effect.promise(() =>
    page.waitForSelector(`tr[data-user="${id}"][data-written="${written}"][data-activity="${activity}"]`, {
      state: "attached",
      timeout: waitMillis
    })
  )

const lightNames = ["masterPbx", "authentication", "presenceSubscription", "userSubscription"] as const
const lightsSelector = "[data-light]"
const allGreen = "#lights" + lightNames.map((name) => `:has([data-light="${name}"][data-state="green"])`).join("")

describe("status page in Chromium", () => {
  it.live("lights go green, a presence change reaches its row live, no password is refused", () =>
    Effect.scoped(Effect.gen(function*() {
      const dataDir = yield* makeTempDir("status-page-data-")
      const demo = yield* startDemo({
        port: yield* ephemeralPort,
        adminPassword: Redacted.make(password),
        dataDir,
        userCount: 12,
        changeEverySeconds: 0
      })
      const { browser } = yield* launchChromium()

      const context = yield* browserContext(browser, {
        httpCredentials: { username: "admin", password },
        viewport: { width: 1280, height: 800 },
        locale: "en-GB",
        timezoneId: "UTC"
      })
      const page = yield* Effect.promise(() => context.newPage())
      const response = yield* Effect.promise(() => page.goto(demo.url + "/"))
      assert.strictEqual(response?.status(), 200)

      // All four lights green at once (the page replaces the four together), read from the DOM; on a timeout the
      // lights' texts say why.
      yield* Effect.tryPromise(() => page.waitForSelector(allGreen, { state: "attached", timeout: waitMillis })).pipe(
        Effect.catch(() =>
          Effect.promise(() => page.locator(lightsSelector).allInnerTexts()).pipe(
            Effect.flatMap((texts) => Effect.die(new Error(`the lights did not all turn green: ${texts.join(" | ")}`)))
          )
        )
      )
      const lights = page.locator(lightsSelector)
      assert.strictEqual(yield* Effect.promise(() => lights.count()), lightNames.length)
      for (const name of lightNames) {
        assert.strictEqual(yield* Effect.promise(() => lights.and(page.locator(`[data-light="${name}"]`)).getAttribute("data-state")), "green")
      }

      // A user whose row is on the page and who is not in a meeting yet.
      const candidates = page.locator(`tr[data-user]:not([data-written="meeting"])`)
      yield* Effect.promise(() => candidates.first().waitFor({ state: "attached", timeout: waitMillis }))
      const userId = yield* Effect.promise(() => candidates.first().getAttribute("data-user"))
      if (userId === null) return yield* Effect.die(new Error("the user row has no data-user"))
      assert.include(demo.teamsUserIds, userId)
      const row = `tr[data-user="${userId}"]`

      // Count full loads: the change must arrive over the event stream, not through a reload.
      const loads = { count: 0 }
      page.on("load", () => loads.count++)

      // A few other users in other presences, so the page (and its screenshot) shows the mapping at work.
      const others = demo.teamsUserIds.filter((id) => id !== userId)
      for (const [index, [availability, activity, written]] of scene.entries()) {
        const id = others[index]!
        yield* setPresence(demo.graph.url, id, availability, activity)
        yield* waitForRow(page, id, written, activity)
      }

      yield* setPresence(demo.graph.url, userId, "Busy", "InAMeeting")
      yield* waitForRow(page, userId, "meeting", "InAMeeting")
      assert.strictEqual(loads.count, 0, "the page was reloaded")
      const teamsCell = yield* Effect.promise(() => page.textContent(`${row} td[data-col="teams"]`))
      assert.strictEqual(teamsCell, "Busy / InAMeeting")

      // Without credentials the server answers 401; Chromium, having no one to ask for a password, then abandons
      // the navigation, so the status page never renders.
      const anonymous = yield* browserContext(browser, {})
      const anonymousPage = yield* Effect.promise(() => anonymous.newPage())
      const statuses: Array<number> = []
      anonymousPage.on("response", (r) => statuses.push(r.status()))
      const navigation = yield* Effect.promise(() =>
        anonymousPage.goto(demo.url + "/").then((r) => `status ${r?.status()}`, (e: Error) => e.message)
      )
      assert.deepStrictEqual(statuses, [401])
      assert.match(navigation, /ERR_INVALID_AUTH_CREDENTIALS|status 401/)
      assert.strictEqual(yield* Effect.promise(() => anonymousPage.locator("[data-light], tr[data-user]").count()), 0)

      // A wrong password is refused too, and the browser shows the 401.
      const wrong = yield* browserContext(browser, { httpCredentials: { username: "admin", password: password + "-wrong" } })
      const wrongPage = yield* Effect.promise(() => wrong.newPage())
      const refused = yield* Effect.promise(() => wrongPage.goto(demo.url + "/"))
      assert.strictEqual(refused?.status(), 401)
      assert.strictEqual(yield* Effect.promise(() => wrongPage.locator("[data-light], tr[data-user]").count()), 0)
    })), { timeout: 45_000 })
})
