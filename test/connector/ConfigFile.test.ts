import { assert, describe, it } from "@effect/vitest"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Redacted } from "effect"
import { accountPasswordVariable, describeConfig, loadConfigFile } from "../../src/config/ConfigFile.ts"
import { tempDirSync } from "../support/tempDir.ts"

const dir = tempDirSync("tpc-config-")
const file = (name: string, text: string) => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

const secrets = ["s3cr3t-client-value", "pbx-app-pw-123", "hunter2-account", "admin-pw-987"]

const validYaml = `
tenantId: contoso.onmicrosoft.com
clientId: 11111111-2222-3333-4444-555555555555
app:
  clientSecret: ${secrets[0]}
accounts:
  - name: tech1
    username: tech1@contoso.com
    flow: password
    password: ${secrets[2]}
  - name: tech2
    username: tech2@contoso.com
    flow: deviceCode
notifications:
  publicBaseUrl: https://presence.contoso.com
pbx:
  masterPbx: pbx-main
  appPassword: ${secrets[1]}
mapping:
  overrides:
    inAMeeting: busy
admin:
  password: ${secrets[3]}
`

describe("configuration file", () => {
  it.effect("a valid YAML file decodes, with defaults and secrets as Redacted", () =>
    Effect.gen(function*() {
      const config = yield* loadConfigFile(file("valid.yaml", validYaml), {})
      assert.strictEqual(config.tenantId, "contoso.onmicrosoft.com")
      assert.strictEqual(config.accounts.length, 2)
      assert.strictEqual(config.pbx.contact, "teams:")
      assert.strictEqual(config.pbx.path, "/pbx")
      assert.strictEqual(config.timers.presenceRenewMinutes, 10)
      assert.strictEqual(config.timers.usersRenewMinutes, 60)
      assert.strictEqual(config.http.port, 8080)
      assert.isTrue(Redacted.isRedacted(config.pbx.appPassword))
      assert.strictEqual(Redacted.value(config.pbx.appPassword), secrets[1])
      assert.deepStrictEqual(config.mapping.overrides, { inAMeeting: "busy" })
    }))

  it.effect("the same file as JSON decodes alike", () =>
    Effect.gen(function*() {
      const json = JSON.stringify({
        tenantId: "t",
        clientId: "c",
        notifications: { mode: "poll" },
        app: { clientSecret: "x-secret" },
        pbx: { masterPbx: "m", appPassword: "p" }
      })
      const config = yield* loadConfigFile(file("valid.json", json), {})
      assert.strictEqual(config.notifications.mode, "poll")
    }))

  it.effect("a file with three mistakes reports all three paths at once", () =>
    Effect.gen(function*() {
      const bad = `
tenantId: t
clientId: c
app:
  clientSecret: x
accounts:
  - name: tech1
    username: tech1@contoso.com
    flow: sms
notifications:
  publicBaseUrl: https://x.example.com
pbx:
  masterPbx: m
  appPassword: p
http:
  port: 99999
mapping:
  overrides:
    InAMeeting: sleeping
`
      const error = yield* loadConfigFile(file("bad.yaml", bad), {}).pipe(Effect.flip)
      const paths = error.problems.map((p) => p.path)
      assert.deepStrictEqual(paths.sort(), ["accounts[0].flow", "http.port", "mapping.overrides.InAMeeting"].sort())
      assert.match(error.message, /3 problems/)
      assert.match(error.message, /on-the-phone/)
    }))

  it.effect("misspelled and missing keys are named", () =>
    Effect.gen(function*() {
      const error = yield* loadConfigFile(file("typo.yaml", "tenantId: t\nclientID: c\npbx: {masterPbx: m, appPassword: p}\n"), {})
        .pipe(Effect.flip)
      const byPath = new Map(error.problems.map((p) => [p.path, p.message]))
      assert.match(byPath.get("clientID") ?? "", /unknown key/)
      assert.match(byPath.get("clientId") ?? "", /required/)
    }))

  it.effect("cross-key rules: push mode needs a public URL and an account; password flow needs a password", () =>
    Effect.gen(function*() {
      const text = `
tenantId: t
clientId: c
accounts:
  - { name: a, username: a@x.com, flow: password }
pbx: { masterPbx: m, appPassword: p }
`
      const error = yield* loadConfigFile(file("semantic.yaml", text), {}).pipe(Effect.flip)
      const paths = error.problems.map((p) => p.path)
      assert.include(paths, "notifications.publicBaseUrl")
      assert.include(paths, "accounts[0].password")
      const message = error.problems.find((p) => p.path === "accounts[0].password")?.message ?? ""
      assert.include(message, accountPasswordVariable("a"))
    }))

  it.effect("push mode needs an HTTPS public URL (plain HTTP only on loopback, where the simulators run)", () =>
    Effect.gen(function*() {
      const text = (url: string) => `
tenantId: t
clientId: c
accounts: [{ name: a, username: a@x.com, flow: deviceCode }]
notifications: { publicBaseUrl: "${url}" }
pbx: { masterPbx: m, appPassword: p }
`
      const error = yield* loadConfigFile(file("http.yaml", text("http://presence.contoso.com")), {}).pipe(Effect.flip)
      assert.deepStrictEqual(error.problems.map((p) => p.path), ["notifications.publicBaseUrl"])
      assert.match(error.problems[0]!.message, /HTTPS/)
      yield* loadConfigFile(file("https.yaml", text("https://presence.contoso.com")), {})
      yield* loadConfigFile(file("loopback.yaml", text("http://127.0.0.1:8080")), {})
    }))

  it.effect("environment variables override the file and supply secrets", () =>
    Effect.gen(function*() {
      const text = `
tenantId: t
clientId: c
accounts:
  - { name: tech-1, username: a@x.com, flow: password }
pbx: { masterPbx: m }
`
      const config = yield* loadConfigFile(file("env.yaml", text), {
        CONNECTOR_PBX_PASSWORD: "from-env",
        CONNECTOR_ACCOUNT_TECH_1_PASSWORD: "acct-env",
        CONNECTOR_PUBLIC_URL: "https://env.example.com",
        CONNECTOR_TENANT_ID: "tenant-from-env",
        PORT: "9090"
      })
      assert.strictEqual(Redacted.value(config.pbx.appPassword), "from-env")
      assert.strictEqual(Redacted.value(config.accounts[0]!.password!), "acct-env")
      assert.strictEqual(config.tenantId, "tenant-from-env")
      assert.strictEqual(config.http.port, 9090)
      assert.strictEqual(config.notifications.publicBaseUrl, "https://env.example.com")
    }))

  it.effect("one pass: the schema's problems and the cross-key checks together, each with its value and its variable", () =>
    Effect.gen(function*() {
      const text = `
tenantId: t
clientId: c
accounts:
  - { name: tech1, username: a@x.com, flow: sms }
  - { name: tech2, username: b@x.com, flow: password }
notifications: { publicBaseUrl: "http://presence.contoso.com" }
pbx: { masterPbx: m, appPassword: p }
timers: { presenceRenewMinutes: 70 }
`
      const error = yield* loadConfigFile(file("onepass.yaml", text), { PORT: "77777" }).pipe(Effect.flip)
      const byPath = new Map(error.problems.map((p) => [p.path, p]))
      assert.deepStrictEqual([...byPath.keys()].sort(), [
        "accounts[0].flow",
        "accounts[1].password",
        "http.port",
        "notifications.publicBaseUrl",
        "timers.presenceRenewMinutes"
      ])
      assert.strictEqual(byPath.get("accounts[0].flow")?.value, "\"sms\"")
      assert.deepStrictEqual([byPath.get("http.port")?.value, byPath.get("http.port")?.from], ["77777", "PORT"])
      assert.strictEqual(byPath.get("notifications.publicBaseUrl")?.value, "\"http://presence.contoso.com\"")
      assert.strictEqual(byPath.get("timers.presenceRenewMinutes")?.value, "70")
      assert.include(error.message, "http.port = 77777 (from PORT): ")
      assert.match(error.message, /5 problems/)
    }))

  it.effect("a missing required key does not hide the cross-key checks", () =>
    Effect.gen(function*() {
      const text = `
clientId: c
accounts: [{ name: a, username: a@x.com, flow: deviceCode }]
notifications: { mode: poll }
pbx: { appPassword: p }
`
      const error = yield* loadConfigFile(file("missing.yaml", text), {}).pipe(Effect.flip)
      assert.deepStrictEqual(error.problems.map((p) => p.path).sort(), ["app", "pbx.masterPbx", "tenantId"])
    }))

  it.effect("the values of secrets and of unknown keys are never echoed", () =>
    Effect.gen(function*() {
      const text = `
tenantId: t
clientId: c
accounts: [{ name: a, username: a@x.com, flow: deviceCode }]
notifications: { publicBaseUrl: "https://x.example.com" }
app: { clientSecrte: "typed-secret-value" }
pbx: { masterPbx: m, appPassword: 12345678 }
`
      const error = yield* loadConfigFile(file("secret.yaml", text), { CONNECTOR_ADMIN_PASSWORD: "" }).pipe(Effect.flip)
      const byPath = new Map(error.problems.map((p) => [p.path, p]))
      assert.strictEqual(byPath.get("pbx.appPassword")?.value, "(a secret, not shown)")
      assert.match(byPath.get("app.clientSecrte")?.message ?? "", /unknown key/)
      assert.isUndefined(byPath.get("app.clientSecrte")?.value)
      assert.notInclude(error.message, "typed-secret-value")
      assert.notInclude(error.message, "12345678")
    }))

  it.effect("broken YAML is one clear problem, not a crash", () =>
    Effect.gen(function*() {
      const error = yield* loadConfigFile(file("broken.yaml", "tenantId: [unclosed\n  : :"), {}).pipe(Effect.flip)
      assert.strictEqual(error.problems.length, 1)
      assert.match(error.problems[0]!.message, /not valid YAML/)
    }))

  it.effect("a missing file is one clear problem", () =>
    Effect.gen(function*() {
      const error = yield* loadConfigFile(join(dir, "nope.yaml"), {}).pipe(Effect.flip)
      assert.match(error.message, /cannot read/)
    }))

  it.effect("no secret appears in the summary or in an error message", () =>
    Effect.gen(function*() {
      const config = yield* loadConfigFile(file("valid2.yaml", validYaml), {})
      const summary = describeConfig(config)
      const bad = validYaml.replace("masterPbx: pbx-main", "masterPbx: 42\n  bogus: 1")
      const error = yield* loadConfigFile(file("bad2.yaml", bad), {}).pipe(Effect.flip)
      const texts = [summary, error.message, JSON.stringify(config), String(config.app?.clientSecret), JSON.stringify(error)]
      for (const text of texts) {
        for (const secret of secrets) assert.notInclude(text, secret)
      }
      assert.include(summary, "set (hidden)")
    }))
})
