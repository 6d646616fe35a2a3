/**
 * The status page works under its Content-Security-Policy in a real browser (headless Chromium, test/support/browser.ts):
 * the page's script runs, its stylesheet applies, its live feed delivers a change, and the browser reports no
 * violation of the policy.
 */
import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { Effect, Redacted } from "effect"
import { startDemo } from "../../src/demo/Demo.ts"
import { contentSecurityPolicy } from "../../src/status/StatusRoutes.ts"
import { launchChromium } from "../support/browser.ts"
import { makeTempDir } from "../support/tempDir.ts"

const password = "csp-test-password"

describe("status page under its Content-Security-Policy, in Chromium", () => {
  it.live("script, stylesheet and live feed work; no violation is reported", () =>
    Effect.scoped(Effect.gen(function*() {
      const demo = yield* startDemo({
        port: 0,
        adminPassword: Redacted.make(password),
        dataDir: yield* makeTempDir("tpc-csp-"),
        userCount: 4,
        changeEverySeconds: 0
      })
      const { browser } = yield* launchChromium()
      const context = yield* Effect.acquireRelease(
        Effect.promise(() => browser.newContext({ httpCredentials: { username: "admin", password } })),
        (context) => Effect.promise(() => context.close())
      )
      const page = yield* Effect.promise(() => context.newPage())
      const violations: Array<string> = []
      page.on("console", (message) => {
        if (/Content Security Policy/i.test(message.text())) violations.push(message.text())
      })
      // Page code as text: the test is compiled without the DOM's types.
      yield* Effect.promise(() =>
        page.addInitScript({
          content: "document.addEventListener('securitypolicyviolation', (e) => console.error('Content Security Policy: ' + e.violatedDirective))"
        })
      )
      const response = yield* Effect.promise(() => page.goto(demo.url + "/"))
      assert.strictEqual(response?.headers()["content-security-policy"], contentSecurityPolicy)

      // The script ran (the lights are rendered) and the stylesheet applies (a light's coloured left border).
      yield* Effect.promise(() => page.waitForSelector("[data-light]", { state: "attached", timeout: 30_000 }))
      const border = yield* Effect.promise(() =>
        page.evaluate("getComputedStyle(document.querySelector('[data-light]')).borderLeftWidth")
      )
      assert.strictEqual(border, "8px")

      // The live feed: a change made in Teams reaches its row without a reload.
      const userId = demo.teamsUserIds[0]!
      yield* Effect.promise(() => page.waitForSelector(`tr[data-user="${userId}"]`, { state: "attached", timeout: 30_000 }))
      yield* demo.graph.setPresence(userId, { availability: "Away", activity: "Away" })
      yield* Effect.promise(() =>
        page.waitForSelector(`tr[data-user="${userId}"][data-written="away"]`, { state: "attached", timeout: 30_000 })
      )
      assert.deepStrictEqual(violations, [])

      // The watch works: an inline style, which the policy forbids, is reported.
      yield* Effect.promise(() => page.evaluate("document.head.appendChild(Object.assign(document.createElement('style'), { textContent: 'body{}' }))"))
      yield* Effect.promise(() => page.waitForEvent("console", { predicate: (m) => /Content Security Policy/i.test(m.text()), timeout: 10_000 }))
      assert.isAbove(violations.length, 0)
    })), 90_000)
})
