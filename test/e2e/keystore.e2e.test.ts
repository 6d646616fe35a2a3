/**
 * A connector whose rich-notification key store is corrupt keeps running: the presence subscription light is red with
 * the reason and what to do, the other lights are green, and the file is left exactly as it was.
 */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Redacted } from "effect"
import { startDemo } from "../../src/demo/Demo.ts"
import { until } from "../support/waiting.ts"
import { makeTempDir } from "../support/tempDir.ts"
import { statusOf } from "../support/demo.ts"

const password = "keystore-admin-password"

describe("an unreadable rich-notification key store", () => {
  it.live("is a red presence subscription light with its fix; the file is not replaced", () =>
    Effect.scoped(Effect.gen(function*() {
      const dataDir = yield* makeTempDir("tpc-keystore-")
      const corrupt = "{\"currentId\":\"tpc-old\",\"certificates\":[{\"id\":\"tpc-old\""
      // Private, as the connector writes it (it refuses a data directory others can read).
      writeFileSync(join(dataDir, "rich-notification-keys.json"), corrupt, { mode: 0o600 })
      const demo = yield* startDemo({ port: 0, userCount: 4, changeEverySeconds: 0, adminPassword: Redacted.make(password), dataDir })
      const status = statusOf(demo, password)
      const snapshot = yield* until(
        "the master PBX and sign-in green",
        Effect.map(status, (s) => s.lights.masterPbx.state === "green" && s.lights.authentication.state === "green" ? s : undefined)
      )
      const light = snapshot.lights.presenceSubscription
      assert.strictEqual(light.state, "red")
      assert.match(light.reason, /rich-notification key store .* is not valid/)
      assert.match(light.fix ?? "", /Restore .* from a backup and restart/)
      assert.strictEqual(readFileSync(join(dataDir, "rich-notification-keys.json"), "utf8"), corrupt)
    })))
})
