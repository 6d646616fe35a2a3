/**
 * The tenants' overview (`/tenants/`, docs/tenants.md) in a real browser (headless Chromium, test/support/browser.ts)
 * against `run`'s tenants in one process and their simulators: one row per tenant, the green ones green, a tenant
 * whose PBX never connected red on its Master PBX light, each row linking to the tenant's page; nothing printed as
 * code. Its screenshot goes to test-results/tenants-overview/ (`UPDATE_SCREENSHOT=1` also copies it to docs/).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { copyFileSync, mkdirSync } from "node:fs"
import { join } from "node:path"
import { launchChromium } from "../support/browser.ts"
import { adminPassword, pbxFor, startTenants } from "../tenants/harness.ts"

const root = join(import.meta.dirname, "../..")
const outputDir = join(root, "test-results", "tenants-overview")
const waitMillis = 30_000

const greenRow = (id: string) =>
  `tr[data-tenant="${id}"][data-state="running"]` +
  ["masterPbx", "authentication", "presenceSubscription"].map((name) => `:has([data-light="${name}"][data-state="green"])`).join("")

describe("tenants' overview in Chromium", () => {
  it.live("one row per tenant with its lights, links to each tenant's page", () =>
    Effect.scoped(Effect.gen(function*() {
      const { port, tenants } = yield* startTenants(["contoso", "fabrikam"])
      // fabrikam's PBX never connects: its Master PBX light stays red.
      yield* Effect.forEach(tenants.filter((t) => t.id !== "fabrikam"), (tenant) => pbxFor(tenant, port), { concurrency: 2 })
      const { browser } = yield* launchChromium()
      const context = yield* Effect.acquireRelease(
        Effect.promise(() => browser.newContext({ httpCredentials: { username: "admin", password: adminPassword }, viewport: { width: 1280, height: 800 } })),
        (context) => Effect.promise(() => context.close())
      )
      const page = yield* Effect.promise(() => context.newPage())
      const response = yield* Effect.promise(() => page.goto(`http://127.0.0.1:${port}/tenants/`))
      assert.strictEqual(response?.status(), 200)
      const waitFor = (selector: string) =>
        Effect.tryPromise(() => page.waitForSelector(selector, { state: "attached", timeout: waitMillis })).pipe(
          Effect.catch(() =>
            Effect.promise(() => page.locator("#tenants tbody").innerText()).pipe(
              Effect.flatMap((rows) => Effect.die(new Error(`${selector} did not appear; rows:\n${rows}`)))
            )
          )
        )
      yield* waitFor(greenRow("default"))
      yield* waitFor(greenRow("contoso"))
      yield* waitFor(`tr[data-tenant="fabrikam"]:has([data-light="masterPbx"][data-state="red"]):has([data-light="authentication"][data-state="green"])`)

      const rows = yield* Effect.promise(() =>
        page.locator("#tenants tbody tr").evaluateAll((trs) => trs.map((tr) => [tr.getAttribute("data-tenant"), tr.querySelector("a")?.getAttribute("href")]))
      )
      assert.deepStrictEqual(rows, [["default", "/"], ["contoso", "/t/contoso/"], ["fabrikam", "/t/fabrikam/"]])
      const text = yield* Effect.promise(() => page.locator("body").innerText())
      assert.notMatch(text, /\b(null|undefined|NaN)\b|\[object /, "no value leaks through as code")
      assert.include(text, "3 tenant(s)")

      // Every column in view at 1280 px: reasons wrap rather than push the counts and errors off to the side.
      const widths = yield* Effect.promise(() =>
        page.locator(".table-wrap").evaluate((wrap) => ({ content: wrap.scrollWidth, shown: wrap.clientWidth }))
      )
      assert.isAtMost(widths.content, widths.shown)
      mkdirSync(outputDir, { recursive: true })
      const path = join(outputDir, "tenants-overview-1280x800.png")
      yield* Effect.promise(() => page.screenshot({ path, fullPage: true, animations: "disabled" }))
      if (process.env["UPDATE_SCREENSHOT"] === "1") copyFileSync(path, join(root, "docs", "tenants-overview.png"))

      // A row's link opens the tenant's own page with the same credentials.
      yield* Effect.promise(() => page.click(`tr[data-tenant="contoso"] a`))
      yield* Effect.promise(() => page.waitForURL(`http://127.0.0.1:${port}/t/contoso/`, { timeout: waitMillis }))
      yield* Effect.promise(() => page.waitForSelector(`#lights [data-light="masterPbx"][data-state="green"]`, { state: "attached", timeout: waitMillis }))
      assert.include(yield* Effect.promise(() => page.title()), "Teams presence connector")
    })), 120_000)
})
