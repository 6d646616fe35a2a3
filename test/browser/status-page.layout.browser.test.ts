/**
 * The status page as an administrator sees it, in headless Chromium against the embedded demo, at 1280×800 (a
 * laptop) and 390×844 (a phone). Screenshots of both go to test-results/status-page/ (`UPDATE_SCREENSHOT=1` also
 * copies them to docs/ for the README). Asserted: every light is visible without scrolling at 1280×800; nothing
 * scrolls sideways at 390 px, where the lights stack and each user row shows name, Teams presence and what was
 * written; every time on the page is written in one format (the browser's locale and time zone, the zone named once);
 * the technical account is not counted as a Teams user or as unmatched; a PBX that drops shows words, with the
 * technical cause one click away; the page has a favicon and its licensing panel.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { copyFileSync, mkdirSync } from "node:fs"
import { join } from "node:path"
import type { Browser, BrowserContextOptions, Page } from "playwright-core"
import { startDemo } from "../../src/demo/Demo.ts"
import { mappingScene, type SceneEntry, launchChromium } from "../support/browser.ts"
import { layoutOf, timesOf } from "./pageLayout.ts"
import { makeTempDir } from "../support/tempDir.ts"

const password = "layout-test-password"
const waitMillis = 30_000
const root = join(import.meta.dirname, "../..")
const outputDir = join(root, "test-results", "status-page")
const desktop = { width: 1280, height: 800 }
const phone = { width: 390, height: 844 }

const openPage = (browser: Browser, url: string, options: BrowserContextOptions) =>
  Effect.gen(function*() {
    const context = yield* Effect.acquireRelease(
      Effect.promise(() => browser.newContext({ httpCredentials: { username: "admin", password }, ...options })),
      (context) => Effect.promise(() => context.close())
    )
    const page = yield* Effect.promise(() => context.newPage())
    const response = yield* Effect.promise(() => page.goto(url + "/"))
    assert.strictEqual(response?.status(), 200)
    return page
  })

const waitFor = (page: Page, selector: string) =>
  Effect.tryPromise(() => page.waitForSelector(selector, { state: "attached", timeout: waitMillis })).pipe(
    Effect.catch(() =>
      Effect.promise(() => page.locator("[data-light]").allInnerTexts()).pipe(
        Effect.flatMap((lights) => Effect.die(new Error(`${selector} did not appear; lights: ${lights.join(" | ")}`)))
      )
    )
  )

const allGreen = "#lights" + ["masterPbx", "authentication", "presenceSubscription", "userSubscription"]
  .map((name) => `:has([data-light="${name}"][data-state="green"])`).join("")

/** Presences that show the mapping at work in the screenshots. */
const scene: ReadonlyArray<SceneEntry> = [["Busy", "InAMeeting", "meeting"], ...mappingScene]

const screenshot = (page: Page, name: string, docsName: string) =>
  Effect.promise(async () => {
    mkdirSync(outputDir, { recursive: true })
    const path = join(outputDir, name)
    await page.screenshot({ path, fullPage: true, animations: "disabled" })
    if (process.env["UPDATE_SCREENSHOT"] === "1") copyFileSync(path, join(root, "docs", docsName))
  })

const countOf = (page: Page, name: string) =>
  Effect.promise(() => page.locator(`#counts [data-count="${name}"] dd`).textContent({ timeout: waitMillis }))

describe("status page layout in Chromium", () => {
  it.live("laptop and phone: lights in view, no sideways scrolling, one time format, words for errors", () =>
    Effect.scoped(Effect.gen(function*() {
      const demo = yield* startDemo({
        port: 0,
        adminPassword: Redacted.make(password),
        dataDir: yield* makeTempDir("status-layout-data-"),
        userCount: 12,
        changeEverySeconds: 0
      })
      const { browser } = yield* launchChromium()
      // A browser in Berlin with British conventions: the page follows the browser, not the server (UTC here).
      const locale = { locale: "en-GB", timezoneId: "Europe/Berlin" }
      const page = yield* openPage(browser, demo.url, { viewport: desktop, ...locale })
      yield* waitFor(page, allGreen)
      for (const [index, [availability, activity, written]] of scene.entries()) {
        const id = demo.teamsUserIds[index]!
        yield* demo.graph.setPresence(id, { availability, activity })
        yield* waitFor(page, `tr[data-user="${id}"][data-written="${written}"][data-activity="${activity}"]`)
      }

      // 1280×800: the four lights are in view at the top, without scrolling.
      const wide = yield* layoutOf(page)
      assert.deepStrictEqual(wide.scroll, { x: 0, y: 0 })
      assert.strictEqual(wide.lights.length, 4)
      for (const light of wide.lights) {
        assert.isTrue(light.shown, `${light.name} is shown`)
        assert.isTrue(light.top >= 0 && light.bottom <= desktop.height, `${light.name} within the first screen (${light.top}–${light.bottom})`)
      }
      assert.isAtMost(wide.scrollWidth, desktop.width)
      yield* screenshot(page, "status-page-1280x800.png", "status-page.png")
      const text = yield* Effect.promise(() => page.locator("body").innerText())
      assert.notMatch(text, /\b(null|undefined|NaN)\b|\[object /, "no value leaks through as code")

      // One time format, in the browser's locale and zone, the zone named once.
      const times = yield* timesOf(page)
      assert.strictEqual(times.zone, "Europe/Berlin")
      assert.isAtLeast(times.elements.length, 5, "lights, sign-in, subscriptions, certificate and start write times")
      for (const element of times.elements) assert.strictEqual(element.text, element.expected)
      assert.deepStrictEqual(times.elsewhere, [], "no clock time outside the one format")
      assert.strictEqual(times.zoneMentions, 1)
      const meta = yield* Effect.promise(() => page.locator("#meta").innerText())
      assert.include(meta, "times in Europe/Berlin")

      // The demo's technical account signs in; it is no Teams user to match, and nobody is left unmatched.
      assert.strictEqual(yield* countOf(page, "technical accounts"), "1")
      assert.strictEqual(yield* countOf(page, "Teams users"), "12")
      assert.strictEqual(yield* countOf(page, "unmatched"), "0")
      assert.notInclude(yield* Effect.promise(() => page.locator("#excluded").innerText()), "presence-1")

      // Licensing: the mode and its counts; a favicon.
      assert.strictEqual(yield* Effect.promise(() => page.locator("#licensing").getAttribute("data-licensing")), "appRight")
      assert.strictEqual(yield* Effect.promise(() => page.locator('#licensing [data-licensing-count="served"] dd').textContent()), "12")
      const icon = yield* Effect.promise(() =>
        page.evaluate(`fetch(document.querySelector('link[rel="icon"]').href).then((r) => r.status + " " + r.headers.get("content-type"))`)
      )
      assert.strictEqual(icon, "200 image/svg+xml")

      // 390×844, a phone: the lights stack, the title stays on one line, nothing scrolls sideways, and each row
      // shows name, Teams presence and what was written within the screen's width.
      const mobile = yield* openPage(browser, demo.url, { viewport: phone, isMobile: true, hasTouch: true, ...locale })
      yield* waitFor(mobile, allGreen)
      yield* waitFor(mobile, `tr[data-user="${demo.teamsUserIds[0]}"][data-written="meeting"]`)
      const narrow = yield* layoutOf(mobile)
      assert.isAtMost(narrow.scrollWidth, phone.width, "nothing scrolls sideways at 390 px")
      assert.isBelow(narrow.title.height, narrow.title.lineHeight * 1.5, "the title is one line")
      narrow.lights.forEach((light, i) => {
        assert.isTrue(light.shown)
        assert.isTrue(light.left >= 0 && light.right <= phone.width, `${light.name} fits the width`)
        if (i > 0) assert.isAtLeast(light.top, narrow.lights[i - 1]!.bottom, `${light.name} is below the light before it`)
      })
      assert.strictEqual(narrow.rows.length, 12)
      for (const row of narrow.rows) {
        for (const [cell, box] of [["name", row.name], ["Teams presence", row.teams], ["written", row.written]] as const) {
          assert.isTrue(box.shown, `${cell} of ${row.user} is shown`)
          assert.isTrue(box.left >= 0 && box.right <= phone.width, `${cell} of ${row.user} is within the width (${box.left}–${box.right})`)
        }
      }
      yield* screenshot(mobile, "status-page-390x844.png", "status-page-phone.png")

      // A slave PBX that drops: its line says so in words; the close code is behind "technical detail".
      yield* demo.pbx.drop("pbx-slave", { reconnect: false })
      const slave = 'li[data-pbx="pbx-slave"]'
      yield* waitFor(page, `${slave} .dot.red`)
      const words = yield* Effect.promise(() => page.locator(slave).innerText())
      assert.include(words, "pbx-slave is not connected")
      assert.notInclude(words, "~effect/")
      assert.notInclude(words, "1006", "the close code is not in the words")
      yield* Effect.promise(() => page.locator(`${slave} details.detail summary`).click())
      assert.include(yield* Effect.promise(() => page.locator(`${slave} details.detail code`).innerText()), "1006")
    })), { timeout: 60_000 })
})
