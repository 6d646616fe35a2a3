import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { tempDirSync } from "../support/tempDir.ts"

const main = join(import.meta.dirname, "../../src/main.ts")
const cwd = tempDirSync("tpc-cli-")
const recordModules = join(import.meta.dirname, "../support/recordModules.ts")
const run = (...args: Array<string>) => {
  const env = { ...process.env }
  delete env["CONNECTOR_CONFIG"]
  const result = spawnSync(process.execPath, [main, ...args], { cwd, env, encoding: "utf8", timeout: 30_000 })
  return { code: result.status, out: result.stdout + result.stderr }
}

/** Runs a command and returns the src/ modules it loaded (paths relative to src/). */
const loadedSources = (...args: Array<string>): ReadonlyArray<string> => {
  const file = join(cwd, `modules-${args[0]}.txt`)
  const env: NodeJS.ProcessEnv = { ...process.env, RECORD_MODULES_FILE: file }
  delete env["CONNECTOR_CONFIG"]
  const result = spawnSync(process.execPath, ["--import", recordModules, main, ...args], { cwd, env, encoding: "utf8", timeout: 30_000 })
  assert.strictEqual(result.status, 1, result.stdout + result.stderr)
  const src = new URL("../../src/", import.meta.url).href
  return readFileSync(file, "utf8").split("\n").filter((url) => url.startsWith(src)).map((url) => url.slice(src.length))
}

const simulatorCode = (path: string) => path.startsWith("simulators/") || path === "connector/Demo.ts"

describe("command line", () => {
  it("--version prints the package version", () => {
    const { code, out } = run("--version")
    assert.strictEqual(code, 0)
    assert.match(out, /teams-presence-connector v\d+\.\d+\.\d+/)
  })

  it("--help lists the sub-commands", () => {
    const { code, out } = run("--help")
    assert.strictEqual(code, 0)
    for (const command of ["run", "demo", "check-config"]) assert.include(out, command)
  })

  it("run without a configuration refuses (the demo is `demo`), exit 1", () => {
    const { code, out } = run("run")
    assert.strictEqual(code, 1)
    assert.include(out, "no configuration file")
    assert.include(out, "demo")
  })

  it("run without a configuration says where it looked and points at demo and check-config", () => {
    const { code, out } = run("run")
    assert.strictEqual(code, 1)
    for (const place of ["--config", "$CONNECTOR_CONFIG", join(cwd, "connector.yaml"), join(cwd, "connector.yml"), join(cwd, "connector.json")]) {
      assert.include(out, place)
    }
    assert.include(out, "teams-presence-connector demo")
    assert.include(out, "teams-presence-connector check-config --config")
    assert.notInclude(out, "    at ")
  })

  it("the help says what each command does: run never starts the demo; demo takes the simulators' ports", () => {
    const root = run("--help").out
    assert.include(root, "Without a sub-command")
    const runHelp = run("run", "--help").out
    assert.include(runHelp, "never starts the demo")
    assert.notInclude(runHelp, "the embedded demo when there is none")
    const demoHelp = run("demo", "--help").out
    for (const flag of ["--port", "--graph-port", "--pbx-port"]) assert.include(demoHelp, flag)
    assert.include(run("check-config", "--help").out, "secrets masked")
    assert.include(root, "--log-level")
  })

  it("check-config lists every mistake and exits 1, without a secret", () => {
    const path = join(cwd, "bad.yaml")
    writeFileSync(path, "tenantId: t\nclientID: c\napp: {clientSecret: very-secret-value}\npbx:\n  masterPbx: m\n  contact: 'tel:'\ntimers:\n  presenceExpiryMinutes: 90\n")
    const { code, out } = run("check-config", "--config", path)
    assert.strictEqual(code, 1)
    for (const key of ["clientID", "clientId", "pbx.appPassword", "pbx.contact", "timers.presenceExpiryMinutes"]) {
      assert.include(out, key)
    }
    assert.notInclude(out, "very-secret-value")
    assert.notInclude(out, "    at ") // a clear list, not a stack trace
  })

  it("check-config prints a masked summary and exits 0 for a valid file", () => {
    const path = join(cwd, "good.yaml")
    writeFileSync(path, "tenantId: t\nclientId: c\nnotifications: {mode: poll}\napp: {clientSecret: very-secret-value}\npbx: {masterPbx: m, appPassword: pbx-secret-value}\n")
    const { code, out } = run("check-config", "--config", path)
    assert.strictEqual(code, 0)
    assert.include(out, "valid")
    assert.include(out, "set (hidden)")
    assert.notInclude(out, "very-secret-value")
    assert.notInclude(out, "pbx-secret-value")
  })

  it("run loads no simulator code; the demo and simulate commands load it when they run", () => {
    const production = loadedSources("run", "--config", join(cwd, "missing.yaml"))
    for (const module of ["cli/Cli.ts", "connector/Connector.ts", "graph/notifications/crypto/DecryptPool.ts", "pbx/socket/PbxAppService.ts"]) {
      assert.include(production, module)
    }
    assert.deepStrictEqual(production.filter(simulatorCode), [])

    const simulate = loadedSources("simulate", "graph", "--users-file", join(cwd, "missing-users.yaml"))
    assert.include(simulate, "simulators/graph/Standalone.ts")
  })
})
