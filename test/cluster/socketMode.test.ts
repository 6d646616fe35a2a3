/**
 * Where a cluster tenant's PBX sockets are served (src/cluster/SocketMode.ts), decided from its configuration as the
 * runner reads it (the configuration file's keys through settingsFromConfig): a tenant with PBX → Teams call watching
 * or App-licence licensing is served in its owner's connector, the others on any runner; the runner setting `owner`
 * overrides every tenant, `any` is read as `auto`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { clusterSettingsFromEnv } from "../../src/cluster/ClusterSettings.ts"
import { type PbxSocketsSetting, socketModeOf } from "../../src/cluster/SocketMode.ts"
import { decodeConfig } from "../../src/config/ConfigFile.ts"
import { settingsFromConfig } from "../../src/config/Settings.ts"
import { withEnv } from "../state/fixtures.ts"

const base = {
  tenantId: "contoso.onmicrosoft.com",
  clientId: "11111111-2222-3333-4444-555555555555",
  app: { clientSecret: "app-secret" },
  accounts: [{ name: "tech1", username: "tech1@contoso.com", flow: "deviceCode" }],
  notifications: { publicBaseUrl: "https://presence.contoso.com" },
  pbx: { masterPbx: "pbx-main", appPassword: "pbx-secret" },
  dataDir: "/tmp/tpc-socket-mode"
}

const modeOf = (raw: object, setting: PbxSocketsSetting) =>
  Effect.map(Effect.flatMap(decodeConfig(raw, "test"), settingsFromConfig), (settings) => socketModeOf(settings, setting))

describe("cluster: PBX socket mode per tenant", () => {
  it.effect("auto: any runner unless call watching or App-licence licensing needs the owner's connector", () =>
    Effect.gen(function*() {
      const plain = yield* modeOf(base, "auto")
      assert.strictEqual(plain.mode, "any")
      assert.match(plain.why, /nothing in its configuration/)
      assert.strictEqual((yield* modeOf({ ...base, pbx: { ...base.pbx, licensing: "appRight" } }, "auto")).mode, "any")
      assert.strictEqual((yield* modeOf({ ...base, pbx: { ...base.pbx, licensing: "all" } }, "auto")).mode, "any")
      assert.strictEqual((yield* modeOf({ ...base, pbxToTeams: { enabled: false } }, "auto")).mode, "any")

      const calls = yield* modeOf({ ...base, pbxToTeams: { enabled: true } }, "auto")
      assert.deepStrictEqual(calls, { mode: "owner", why: "pbxToTeams is enabled (call watching): it needs the PBX sockets in the owner's connector" })
      const licence = yield* modeOf({ ...base, pbx: { ...base.pbx, licensing: "appLicence" } }, "auto")
      assert.strictEqual(licence.mode, "owner")
      assert.match(licence.why, /^pbx\.licensing is appLicence: /)
      const both = yield* modeOf({ ...base, pbxToTeams: { enabled: true }, pbx: { ...base.pbx, licensing: "appLicence" } }, "auto")
      assert.strictEqual(both.mode, "owner")
      assert.match(both.why, /^pbxToTeams is enabled \(call watching\) and pbx\.licensing is appLicence: /)
    }))

  it.effect("any is read as auto; owner forces every tenant into its owner's connector", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* modeOf(base, "any")).mode, "any")
      assert.strictEqual((yield* modeOf({ ...base, pbxToTeams: { enabled: true } }, "any")).mode, "owner")
      const forced = yield* modeOf(base, "owner")
      assert.deepStrictEqual(forced, { mode: "owner", why: "CONNECTOR_CLUSTER_PBX_SOCKETS=owner" })
    }))

  it.effect("the runner setting: auto by default, any and owner read, anything else refused", () =>
    Effect.gen(function*() {
      const http = { host: "127.0.0.1", port: 8080 }
      const read = (value: string | undefined) =>
        clusterSettingsFromEnv(http).pipe(
          Effect.map((s) => s.pbxSockets),
          Effect.option,
          Effect.provide(withEnv(value === undefined ? {} : { CONNECTOR_CLUSTER_PBX_SOCKETS: value }))
        )
      assert.deepStrictEqual(yield* read(undefined), Option.some("auto"))
      assert.deepStrictEqual(yield* read("any"), Option.some("any"))
      assert.deepStrictEqual(yield* read("owner"), Option.some("owner"))
      assert.strictEqual((yield* read("sometimes"))._tag, "None")
    }))
})
