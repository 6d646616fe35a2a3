/**
 * A tenant's configuration file (`tenants add|update`): the tenant keys of a configuration file, checked as
 * check-config checks one — every problem at once, the process's own settings refused with where they belong, secrets
 * never echoed — and the tenant id of the command line.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { decodeTenantConfig, describeTenant, parseTenantId } from "../../src/config/TenantFile.ts"

const valid = {
  tenantId: "fabrikam.onmicrosoft.com",
  clientId: "22222222-2222-3333-4444-555555555555",
  app: { clientSecret: "fabrikam-client-secret" },
  accounts: [{ name: "tech1", username: "tech1@fabrikam.com", flow: "password", password: "fabrikam-account-pw" }],
  notifications: { publicBaseUrl: "https://presence.fabrikam.example" },
  pbx: { masterPbx: "pbx-fab", appPassword: "fabrikam-app-pw" },
  pbxToTeams: { enabled: true, app: { clientId: "33333333-2222-3333-4444-555555555555", clientSecret: "fabrikam-writer-secret" } }
}
const secrets = ["fabrikam-client-secret", "fabrikam-account-pw", "fabrikam-app-pw", "fabrikam-writer-secret"]

describe("tenant file", () => {
  it.effect("a valid file is the tenant's configuration, with the defaults of a configuration file and secrets Redacted", () =>
    Effect.gen(function*() {
      const config = yield* decodeTenantConfig(valid, "fabrikam.yaml")
      assert.strictEqual(config.tenantId, "fabrikam.onmicrosoft.com")
      assert.strictEqual(config.pbx.path, "/pbx")
      assert.strictEqual(config.timers.presenceRenewMinutes, 10)
      assert.strictEqual(Redacted.value(config.pbx.appPassword), "fabrikam-app-pw")
      assert.strictEqual(Redacted.value(config.pbxToTeams.app!.clientSecret!), "fabrikam-writer-secret")
      assert.notProperty(config, "http", "only the tenant's keys")
      assert.notProperty(config, "dataDir")
      const line = describeTenant("fabrikam", 3, config)
      assert.strictEqual(
        line,
        "fabrikam (version 3): Microsoft tenant fabrikam.onmicrosoft.com, app 22222222-2222-3333-4444-555555555555; 1 account(s); " +
          "push mode; master PBX pbx-fab; own status password not set"
      )
      for (const secret of secrets) assert.notInclude(line, secret)
    }))

  it.effect("every problem at once: the process's settings, the schema's, the rules across keys; no secret echoed", () =>
    Effect.gen(function*() {
      const { clientId: _, ...withoutClientId } = valid
      const raw = {
        ...withoutClientId,
        http: { port: 9 },
        database: { url: "postgres://u:database-pw@host/db" },
        accounts: [],
        pbx: { ...valid.pbx, bogus: 1 },
        timers: { presenceRenewMinutes: 70 }
      }
      const error = yield* Effect.flip(decodeTenantConfig(raw, "bad.yaml"))
      assert.deepStrictEqual(error.problems.map((p) => p.path).sort(), [
        "accounts",
        "clientId",
        "database",
        "http",
        "pbx.bogus",
        "timers.presenceRenewMinutes"
      ])
      assert.match(error.problems.find((p) => p.path === "http")!.message, /a setting of the process, not of a tenant/)
      for (const secret of [...secrets, "database-pw"]) assert.notInclude(error.message, secret)
    }))

  it.effect("the process's settings alone are refused too", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(decodeTenantConfig({ ...valid, dataDir: "/var/lib/x" }, "t.yaml"))
      assert.deepStrictEqual(error.problems.map((p) => p.path), ["dataDir"])
    }))

  it.effect("tenant ids: lower-case letters, digits, inner hyphens", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* parseTenantId("contoso-1", "tenants add"), "contoso-1")
      for (const bad of ["Contoso", "-x", "x-", "a_b", "", "x".repeat(64)]) {
        const error = yield* Effect.flip(parseTenantId(bad, "tenants add"))
        assert.match(error.message, /is not a tenant id/)
      }
    }))
})
