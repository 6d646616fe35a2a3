/**
 * The `pbxToTeams` configuration: off by default (and then nothing of it is in the settings), its defaults, the checks
 * across keys (a credential that can write, a refresh before the expiry), a separate app registration whose secret
 * comes from the environment and never shows; and which users it serves (a PBX group from the users table's grps).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { applyEnvironment, decodeConfig } from "../../src/config/ConfigFile.ts"
import { settingsFromConfig } from "../../src/config/Settings.ts"
import { callUsers } from "../../src/connector/calls/CallUsers.ts"
import { emptyPlan, type Plan } from "../../src/connector/Plan.ts"
import { decodeReplicateMessage, type PbxUser } from "../../src/pbx/directory/PbxDirectory.ts"

const base = {
  tenantId: "contoso.onmicrosoft.com",
  clientId: "11111111-2222-3333-4444-555555555555",
  accounts: [{ name: "tech1", username: "tech1@contoso.com", flow: "deviceCode" }],
  notifications: { publicBaseUrl: "https://presence.contoso.com" },
  pbx: { masterPbx: "pbx-main", appPassword: "pbx-secret" },
  dataDir: "/tmp/tpc-calls-config"
}
const withApp = { ...base, app: { clientSecret: "app-secret" } }

const problemsOf = (raw: unknown) =>
  decodeConfig(raw, "test").pipe(Effect.flip, Effect.map((error) => error.problems.map((p) => `${p.path}: ${p.message}`)))

describe("pbxToTeams configuration", () => {
  it.effect("off by default: no settings, nothing runs", () =>
    Effect.gen(function*() {
      const config = yield* decodeConfig(withApp, "test")
      assert.isFalse(config.pbxToTeams.enabled)
      assert.isUndefined((yield* settingsFromConfig(config)).pbxToTeams)
    }))

  it.effect("on: the defaults, written with the connector's own application", () =>
    Effect.gen(function*() {
      const settings = (yield* settingsFromConfig(yield* decodeConfig({ ...withApp, pbxToTeams: { enabled: true } }, "test"))).pbxToTeams!
      assert.deepInclude(settings, {
        source: "presence",
        ringing: false,
        hold: true,
        availability: "Busy",
        activity: "InACall",
        expirationMinutes: 5,
        refreshMillis: 240_000,
        debounceMillis: 0,
        graceMillis: 60_000,
        clearOnShutdown: true
      })
      assert.deepStrictEqual(settings.writer, { _tag: "Shared" })
      const rcc = (yield* settingsFromConfig(yield* decodeConfig({
        ...withApp,
        pbxToTeams: { enabled: true, source: "rcc", callStates: "ringing", holdCounts: false, presence: "DoNotDisturb/Presenting", group: "Sales" }
      }, "test"))).pbxToTeams!
      assert.deepInclude(rcc, { source: "rcc", ringing: true, hold: false, availability: "DoNotDisturb", activity: "Presenting", group: "Sales" })
    }))

  it.effect("refused: no application credential, a refresh not before the expiry, a pair setPresence does not take", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* problemsOf({ ...base, pbxToTeams: { enabled: true } }), [
        "pbxToTeams.app: setPresence is application-only: configure app (the connector's credential) or pbxToTeams.app (a separate app registration)"
      ])
      const late = yield* problemsOf({ ...withApp, pbxToTeams: { enabled: true, refreshSeconds: 300 } })
      assert.match(late.join("\n"), /pbxToTeams\.refreshSeconds: must be shorter than pbxToTeams\.expirationMinutes \(5 min\)/)
      const pair = yield* problemsOf({ ...withApp, pbxToTeams: { enabled: true, presence: "Busy/Busy" } })
      assert.match(pair.join("\n"), /pbxToTeams\.presence/)
      const expiry = yield* problemsOf({ ...withApp, pbxToTeams: { enabled: true, expirationMinutes: 4 } })
      assert.match(expiry.join("\n"), /pbxToTeams\.expirationMinutes/)
      // Off, nothing of it is checked.
      assert.isFalse((yield* decodeConfig({ ...base, app: { clientSecret: "x" }, pbxToTeams: { refreshSeconds: 9000 } }, "test")).pbxToTeams.enabled)
    }))

  it.effect("a separate app registration, its secret from CONNECTOR_PBXTOTEAMS_CLIENT_SECRET, never shown", () =>
    Effect.gen(function*() {
      const raw = applyEnvironment({ ...base, pbxToTeams: { enabled: true, app: { clientId: "99999999-0000-0000-0000-000000000001" } } }, {
        CONNECTOR_PBXTOTEAMS_CLIENT_SECRET: "writer-secret-value"
      })
      const config = yield* decodeConfig(raw, "test")
      const settings = (yield* settingsFromConfig(config)).pbxToTeams!
      assert.strictEqual(settings.writer._tag, "Separate")
      if (settings.writer._tag !== "Separate" || settings.writer.credential._tag !== "ClientSecret") return assert.fail("a secret")
      assert.strictEqual(settings.writer.clientId, "99999999-0000-0000-0000-000000000001")
      assert.strictEqual(Redacted.value(settings.writer.credential.secret), "writer-secret-value")
      assert.notInclude(JSON.stringify(settings), "writer-secret-value")
      assert.notInclude(String(settings.writer.credential.secret), "writer-secret-value")
      const incomplete = yield* problemsOf({ ...base, pbxToTeams: { enabled: true, app: { clientId: "c" } } })
      assert.match(incomplete.join("\n"), /pbxToTeams\.app: set clientSecret/)
    }))
})

describe("pbxToTeams users", () => {
  const pbxUser = (n: number, groups?: ReadonlyArray<string>): PbxUser => ({
    guid: `g${n}`, h323: `u${n}`, cn: `User ${n}`, dn: `User ${n}`, e164: "", emails: [], loc: "pbx-main", node: "root", apps: [], hide: false,
    ...(groups !== undefined ? { groups } : {})
  })
  const teams = (n: number) => ({ id: `T${n}`, displayName: `User ${n}`, userPrincipalName: `u${n}@x`, mail: null, otherMails: [] })
  const plan: Plan = { ...emptyPlan, ready: true, synced: [{ teams: teams(1), pbx: pbxUser(1, ["Sales"]) }, { teams: teams(2), pbx: pbxUser(2) }] }

  it("every served user, or the members of one PBX group (case-insensitive)", () => {
    assert.deepStrictEqual(callUsers(plan, undefined).map((u) => `${u.guid}→${u.teamsId}`), ["g1→T1", "g2→T2"])
    assert.deepStrictEqual(callUsers(plan, " sales ").map((u) => u.guid), ["g1"])
    assert.deepStrictEqual(callUsers(plan, "Support"), [])
  })

  it("the groups come from the users table's grps column", () => {
    const edit = decodeReplicateMessage({ mt: "ReplicateUpdate", columns: { guid: "g1", h323: "u1", grps: [{ name: "Sales", mode: "active", dyn: "in" }, { name: "Night shift" }] } })
    assert.deepStrictEqual(edit._tag === "Upsert" ? edit.user.groups : undefined, ["Sales", "Night shift"])
  })
})
