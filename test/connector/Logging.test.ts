import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger, Redacted } from "effect"
import { scrubSecrets } from "../../src/observability/Logging.ts"

describe("logging", () => {
  it("the scrubber masks JWTs, bearer tokens and credential fields", () => {
    const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVlLWhlcmU"
    const line = `token ${jwt} Authorization: Bearer abcdefghijklmnop client_secret=s3cr3t&password=hunter22 {"refresh_token":"0.AAA-rt-value"}`
    const scrubbed = scrubSecrets(line)
    for (const secret of [jwt, "abcdefghijklmnop", "s3cr3t", "hunter22", "0.AAA-rt-value"]) assert.notInclude(scrubbed, secret)
    assert.include(scrubbed, "<redacted")
    assert.strictEqual(scrubSecrets("PBX pbx-master logged in"), "PBX pbx-master logged in")
  })

  it.effect("a Redacted value logs as <redacted>", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const capture = Logger.map(Logger.formatJson, (line) => void lines.push(line))
      yield* Effect.logInfo("signing in", { password: Redacted.make("very-secret") }).pipe(
        Effect.provide(Logger.layer([capture]))
      )
      assert.strictEqual(lines.length, 1)
      assert.notInclude(lines[0]!, "very-secret")
    }))
})
