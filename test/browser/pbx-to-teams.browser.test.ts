/**
 * The status page with PBX → Teams on, in a real browser (test/support/browser.ts) against the embedded demo: the
 * fifth light turns green, and a PBX call placed through the PBX simulator's control API shows under its user as
 * "in a PBX call since …" without a reload, and goes away when the call ends.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { join } from "node:path"
import { startDemo } from "../../src/demo/Demo.ts"
import { freePort } from "../support/waiting.ts"
import { launchChromium } from "../support/browser.ts"
import { makeTempDir } from "../support/tempDir.ts"

const password = "browser-test-password"
const waitMillis = 30_000

describe("status page in Chromium: PBX → Teams", () => {
  it.live("the PBX → Teams light, and a call under its user while it lasts", () =>
    Effect.scoped(Effect.gen(function*() {
      const dataDir = yield* makeTempDir("status-page-p2t-")
      const demo = yield* startDemo({
        port: yield* freePort,
        adminPassword: Redacted.make(password),
        dataDir,
        userCount: 4,
        changeEverySeconds: 0,
        pbxToTeams: {}
      })
      const { browser } = yield* launchChromium()
      const context = yield* Effect.acquireRelease(
        Effect.promise(() => browser.newContext({ httpCredentials: { username: "admin", password }, locale: "en-GB", timezoneId: "UTC" })),
        (context) => Effect.promise(() => context.close())
      )
      const page = yield* Effect.promise(() => context.newPage())
      yield* Effect.promise(() => page.goto(demo.url + "/"))
      yield* Effect.promise(() => page.waitForSelector(`[data-light="pbxToTeams"][data-state="green"]`, { state: "attached", timeout: waitMillis }))
      assert.match(yield* Effect.promise(() => page.locator(`[data-light="pbxToTeams"]`).innerText()), /PBX → Teams[\s\S]*watching the calls of 4 of 4 users/)

      const teamsId = demo.teamsUserIds[0]!
      const guid = (yield* demo.pbx.users).find((u) => (u.emails ?? []).includes("user1@contoso.com"))!.guid
      const call = yield* demo.pbx.placeCall(guid)
      const since = `tr[data-user="${teamsId}"] [data-col="teams"] small[data-call-since]`
      yield* Effect.promise(() => page.waitForSelector(since, { state: "attached", timeout: waitMillis }))
      assert.match(yield* Effect.promise(() => page.locator(since).innerText()), /^in a PBX call since \S/)
      yield* demo.pbx.endCall(call)
      yield* Effect.promise(() => page.waitForSelector(since, { state: "detached", timeout: waitMillis }))
    })), 90_000)
})
