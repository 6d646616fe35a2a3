/**
 * The systemd unit shipped in deploy/: `systemd-analyze verify` accepts it without a warning (where that tool exists;
 * elsewhere the test says it is skipped and why), its exposure score stays low, it has the hardening and the stop
 * timeout docs/operations.md promises, and every variable of the EnvironmentFile example is one the connector reads.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { accountPasswordVariable, environmentVariables } from "../../src/config/ConfigFile.ts"
import { tempDirSync } from "../support/tempDir.ts"

const root = join(import.meta.dirname, "../..")
const unitName = "teams-presence-connector.service"
const unit = readFileSync(join(root, "deploy", unitName), "utf8")
const envExample = readFileSync(join(root, "deploy", "teams-presence-connector.env.example"), "utf8")

const analyze = (...args: Array<string>) => spawnSync("systemd-analyze", args, { encoding: "utf8", timeout: 60_000 })
const available = analyze("--version").error === undefined
const skipped = "(skipped: systemd-analyze is not installed on this machine)"

/** The unit as on a machine where Node.js is this one (verify checks that ExecStart's program exists). */
const unitHere = () => {
  const dir = tempDirSync("tpc-unit-")
  const path = join(dir, unitName)
  writeFileSync(path, unit.replace("ExecStart=/usr/bin/node ", `ExecStart=${process.execPath} `))
  return path
}

/** Read by the state store itself (src/state/Sealer.ts, src/state/postgres/PgStateStore.ts), not by the configuration. */
const stateStore = new Set(["CONNECTOR_STATE_KEY", "CONNECTOR_DATABASE_URL"])

/** `Key=value` lines of the [Service] section. */
const service = new Map(
  unit.slice(unit.indexOf("[Service]"), unit.indexOf("[Install]")).split("\n")
    .filter((line) => /^[A-Za-z]+=/.test(line))
    .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)] as const)
)

describe("the systemd unit", () => {
  it.skipIf(!available)(`systemd-analyze verify accepts it without a warning ${available ? "" : skipped}`, () => {
    const result = analyze("verify", unitHere())
    assert.strictEqual(result.status, 0, result.stderr)
    assert.strictEqual((result.stdout + result.stderr).trim(), "", "no warning either")
  })

  it.skipIf(!available)(`its exposure level (systemd-analyze security) is at most 2 of 10 ${available ? "" : skipped}`, () => {
    const result = analyze("security", "--offline=yes", unitHere())
    const level = /Overall exposure level for .*: ([\d.]+)/.exec(result.stdout)
    // systemd before 252 has no --offline: nothing to measure there.
    if (level === null) return assert.match(result.stderr, /offline|unrecognized|Unknown/i)
    assert.isAtMost(Number(level[1]), 2)
  })

  it("it runs as its own user with the hardening systemd offers, restarts on failure and waits for the ordered stop", () => {
    for (const [key, value] of [
      ["DynamicUser", "yes"],
      ["StateDirectory", "teams-presence-connector"],
      ["StateDirectoryMode", "0700"],
      ["ProtectSystem", "strict"],
      ["ProtectHome", "yes"],
      ["NoNewPrivileges", "yes"],
      ["PrivateTmp", "yes"],
      ["Restart", "on-failure"],
      ["EnvironmentFile", "/etc/teams-presence-connector/secrets.env"],
      ["CapabilityBoundingSet", ""]
    ] as const) assert.strictEqual(service.get(key), value, key)
    assert.include(service.get("ExecStart") ?? "", "dist/bin.js run")
    assert.include(service.get("ExecStart") ?? "", "--max-old-space-size=224")
    // The same Node flags and malloc setting as the bin's shebang (src/bin.ts), which `npm start` and the bench use too.
    const shebang = (readFileSync(join(root, "src", "bin.ts"), "utf8").split("\n", 1)[0] ?? "").split(/\s+/)
    const execStart = (service.get("ExecStart") ?? "").split(/\s+/)
    assert.deepStrictEqual(execStart.filter((word) => word.startsWith("--")), shebang.filter((word) => word.startsWith("--")))
    const environment = unit.split("\n").filter((line) => line.startsWith("Environment=")).map((line) => line.slice("Environment=".length))
    for (const assignment of shebang.filter((word) => /^[A-Z_]+=/.test(word))) assert.include(environment, assignment)
    // The ordered stop: writer flush (10 s) + HTTP server (2 s) + subscription deletion + telemetry flush (3 s).
    assert.isAtLeast(Number(service.get("TimeoutStopSec")), 30)
  })

  it("the EnvironmentFile example names only variables the connector reads", () => {
    const names = [...envExample.matchAll(/^#?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!)
    assert.isAtLeast(names.length, 5)
    const known = new Set(environmentVariables.map((v) => v.name))
    for (const name of names) {
      assert.isTrue(known.has(name) || stateStore.has(name) || name === accountPasswordVariable("presence-1") || name.startsWith("OTEL_"), name)
    }
    assert.include(envExample, "0600")
    const stateSources = ["src/state/Sealer.ts", "src/state/postgres/PgStateStore.ts"].map((file) => readFileSync(join(root, file), "utf8")).join("\n")
    for (const name of stateStore) assert.include(stateSources, `"${name}"`, `${name} is read by the state store`)
  })
})
