/** Every log line written while signing in, failing and retrying is searched for secrets and tokens. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger, Redacted, References } from "effect"
import { readFileSync } from "node:fs"
import { AppCredentialRef, accountRef } from "../../src/graph/client/GraphSettings.ts"
import { refreshTokenPath } from "../support/legacyDataDir.ts"
import { GraphSimulator, generateUsers, simUserId } from "../../src/simulators/graph/GraphSimulator.ts"
import { buildGraph, clientId, clientSecret, settingsFor, tempDataDir, tenantId } from "./harness.ts"

describe("logs", () => {
  it.live("no secret, password or token appears in any log line", () => {
    const lines: Array<string> = []
    const capture = Logger.map(Logger.formatJson, (line) => {
      lines.push(line)
    })
    return Effect.gen(function*() {
      const sim = yield* GraphSimulator.make({
        tenantId,
        clientId,
        clientSecrets: [{ value: clientSecret }],
        accounts: [{ upn: "tech1@contoso.com", password: "pw-very-secret" }],
        users: generateUsers(3)
      })
      const settings = settingsFor(sim, {
        accounts: [{ name: "tech1", username: "tech1@contoso.com", flow: "password", password: Redacted.make("pw-very-secret") }]
      })
      const dataDir = tempDataDir()
      const { tokens, presences } = yield* buildGraph(settings, { dataDir })
      const seen: Array<string> = [clientSecret, "pw-very-secret"]
      seen.push(Redacted.value(yield* tokens.getToken(AppCredentialRef)))
      seen.push(Redacted.value(yield* tokens.getToken(accountRef("tech1"))))
      seen.push(JSON.parse(readFileSync(refreshTokenPath(dataDir, "tech1"), "utf8")).refreshToken)
      // Retries, a 401 and a failure all log.
      yield* sim.faults.throttle(1, 0.01)
      yield* sim.expireAllTokens
      yield* presences.getPresences([simUserId(1)], accountRef("tech1"))
      seen.push(Redacted.value(yield* tokens.getToken(accountRef("tech1"))))
      seen.push(JSON.parse(readFileSync(refreshTokenPath(dataDir, "tech1"), "utf8")).refreshToken)
      const { tokens: wrong } = yield* buildGraph(settingsFor(sim, { app: { _tag: "ClientSecret", secret: Redacted.make("wrong-secret-xyz") } }))
      const error = yield* wrong.getToken(AppCredentialRef).pipe(Effect.flip)
      yield* Effect.logError("sign-in failed", error)
      seen.push("wrong-secret-xyz")

      assert.isAbove(lines.length, 3, "logs were captured")
      for (const secret of seen) {
        assert.isAbove(secret.length, 5)
        for (const line of lines) assert.notInclude(line, secret)
      }
    }).pipe(
      Effect.scoped,
      Effect.provide(Logger.layer([capture])),
      Effect.provideService(References.MinimumLogLevel, "All")
    )
  })
})
