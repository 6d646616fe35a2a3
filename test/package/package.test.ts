/**
 * The package as users get it (install.ts): `npm pack`, the tarball installed offline into an empty project, and
 * there the bin through npx (`--version`, `check-config`), the demo started from the installed bin reaching /readyz
 * (its status page, static files and decryption worker running from dist/), an older Node.js refused by the bin, and
 * a TypeScript and a JavaScript file importing `teams-presence-connector` and `teams-presence-connector/testing`.
 */
import { assert, beforeAll, describe, it } from "@effect/vitest"
import { spawn, spawnSync } from "node:child_process"
import { copyFileSync, lstatSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { olderNode, repoRoot } from "../support/node.ts"
import { basicAuth, freePort, until } from "../support/waiting.ts"
import { childEnv, type Installed, npm, packAndInstall } from "./install.ts"
import { tempDirSync } from "../support/tempDir.ts"

const { version } = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }
const fixtures = join(repoRoot, "test", "fixtures", "package-app")
const dir = tempDirSync("tpc-package-")
let installed: Installed

beforeAll(() => {
  installed = packAndInstall(dir)
}, 180_000)

/** The installed bin through npx, offline, in the project. */
const npx = (...args: Array<string>) =>
  npm(["--offline", "--cache", installed.npmCache, "teams-presence-connector", ...args], installed.project, "npx")

/** The installed command, as npm linked it (node_modules/.bin; its shebang starts Node.js). */
const bin = () => join(installed.project, "node_modules", ".bin", "teams-presence-connector")

/** Runs a command in the project with this Node.js first on PATH; returns its exit code and output. */
const runIn = (command: string, args: ReadonlyArray<string>) => {
  const result = spawnSync(command, args, { cwd: installed.project, env: childEnv(), encoding: "utf8", timeout: 60_000 })
  return { code: result.status, out: `${result.stdout}${result.stderr}` }
}

describe("the package as users get it", () => {
  it("the tarball holds the built package, its docs, the systemd unit and licence; no sources, tests or bench", () => {
    const files = installed.files
    for (const file of [
      "package.json",
      "README.md",
      "LICENSE",
      "docs/configuration.md",
      "docs/examples/embed.ts",
      "scripts/check-node.cjs",
      "dist/bin.js",
      "dist/index.js",
      "dist/index.d.ts",
      "dist/testing.js",
      "dist/testing.d.ts",
      "dist/graph/notifications/crypto/decryptWorker.js",
      "dist/status/static/index.html",
      "dist/status/static/app.js",
      "dist/status/static/style.css",
      "dist/status/static/format.js",
      "dist/status/static/favicon.svg",
      "deploy/teams-presence-connector.service",
      "deploy/teams-presence-connector.env.example"
    ]) assert.include(files, file)
    const unexpected = files.filter((file) =>
      /^(src|test|bench|\.ci)\//.test(file) || (file.startsWith("dist/") && /\.ts$/.test(file) && !file.endsWith(".d.ts"))
    )
    assert.deepStrictEqual(unexpected, [])
    // npm unpacked it (no link to this checkout) and linked its bin.
    assert.isFalse(lstatSync(installed.packageDir).isSymbolicLink())
    assert.include(readdirSync(join(installed.project, "node_modules", ".bin")), "teams-presence-connector")
  })

  it("npx teams-presence-connector --version prints the package's version", () => {
    assert.strictEqual(npx("--version").trim(), `teams-presence-connector v${version}`)
  })

  it("teams-presence-connector check-config accepts a sample file with a masked summary and lists a broken file's problems", () => {
    const good = join(installed.project, "connector.yaml")
    writeFileSync(good, "tenantId: t\nclientId: c\nnotifications: {mode: poll}\napp: {clientSecret: sample-secret-value}\npbx: {masterPbx: m, appPassword: sample-pbx-secret}\n")
    const checked = runIn(bin(), ["check-config", "--config", good])
    assert.strictEqual(checked.code, 0, checked.out)
    const summary = checked.out
    assert.include(summary, "connector.yaml: valid")
    assert.include(summary, "set (hidden)")
    assert.notInclude(summary, "sample-secret-value")

    const bad = join(installed.project, "broken.yaml")
    writeFileSync(bad, "tenantId: t\nclientID: c\npbx: {masterPbx: m}\n")
    const refused = runIn(bin(), ["check-config", "--config", bad])
    assert.strictEqual(refused.code, 1, refused.out)
    for (const key of ["clientID", "clientId", "pbx.appPassword"]) assert.include(refused.out, key)
  })

  it.skipIf(olderNode === undefined)(`the installed bin refuses an older Node.js (${olderNode?.version}) with the message`, () => {
    const result = spawnSync(olderNode!.path, [join(installed.packageDir, "dist", "bin.js"), "--version"], { encoding: "utf8", timeout: 30_000 })
    assert.strictEqual(result.status, 1, result.stdout + result.stderr)
    assert.include(result.stderr, `this is Node.js ${olderNode!.version}`)
    assert.include(result.stderr, "npx -y -p node@24 -- teams-presence-connector --version")
  })

  it.live("the demo from the installed bin reaches /readyz, serves its status page and decrypts in its worker; SIGTERM → exit 0", () =>
    Effect.scoped(Effect.gen(function*() {
      const port = yield* freePort
      const base = `http://127.0.0.1:${port}`
      const password = "package-demo-password"
      const log = join(dir, "demo.log")
      const out = openSync(log, "w")
      const child = spawn(bin(), ["demo", "--port", String(port)], {
        cwd: installed.project,
        env: { ...childEnv(), CONNECTOR_ADMIN_PASSWORD: password },
        stdio: ["ignore", out, out]
      })
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
      yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
      const get = (path: string, headers: Record<string, string> = {}) =>
        Effect.promise(() => fetch(base + path, { headers }).then(async (r) => ({ status: r.status, body: await r.text() }), () => undefined))

      yield* until("/readyz 200", Effect.map(get("/readyz"), (r) => (r?.status === 200 ? r : undefined)), 45_000)

      const auth = { authorization: basicAuth(password) }
      const page = yield* get("/", auth)
      assert.strictEqual(page?.status, 200)
      assert.include(page?.body, "/static/app.js")
      for (const asset of ["/static/app.js", "/static/style.css"]) {
        const file = yield* get(asset, auth)
        assert.strictEqual(file?.status, 200, asset)
        assert.strictEqual(file?.body, readFileSync(join(installed.packageDir, "dist", "status", "static", asset.slice("/static/".length)), "utf8"))
      }

      // The demo changes presences every few seconds; their rich notifications are decrypted by dist/'s worker.
      const decrypted = /^connector_decrypted_to_pbx_seconds_count(?:\{[^}]*\})? (\d+)/m
      yield* until("a notification decrypted and written to the PBX", Effect.map(get("/metrics"), (r) => {
        const count = decrypted.exec(r?.body ?? "")?.[1]
        return count !== undefined && Number(count) > 0 ? count : undefined
      }), 30_000)

      child.kill("SIGTERM")
      assert.strictEqual(yield* Effect.promise(() => exited), 0, readFileSync(log, "utf8").slice(-2000))
    })), 120_000)

  it("a TypeScript file type-checks against the package's declarations and runs; so does the documented example", () => {
    for (const file of ["app.ts", "tsconfig.json"]) copyFileSync(join(fixtures, file), join(installed.project, file))
    copyFileSync(join(installed.packageDir, "docs", "examples", "embed.ts"), join(installed.project, "embed.ts"))
    const tsc = runIn(process.execPath, [join(repoRoot, "node_modules", "typescript", "bin", "tsc"), "-p", installed.project])
    assert.strictEqual(tsc.code, 0, tsc.out)

    const run = runIn(process.execPath, ["app.ts"])
    assert.strictEqual(run.code, 0, run.out)
    assert.deepStrictEqual(resultOf(run.out), { entry: "app.ts", version, healthz: 200, simulatedUsers: 3 })
  })

  it("a JavaScript file imports both entry points and runs", () => {
    copyFileSync(join(fixtures, "app.js"), join(installed.project, "app.js"))
    const run = runIn(process.execPath, ["app.js"])
    assert.strictEqual(run.code, 0, run.out)
    assert.deepStrictEqual(resultOf(run.out), { entry: "app.js", version, healthz: 200, simulatedUsers: 4 })
  })
})

const resultOf = (output: string): unknown => {
  const line = output.split("\n").find((l) => l.startsWith("RESULT "))
  assert.isDefined(line, output)
  return JSON.parse(line!.slice("RESULT ".length))
}
