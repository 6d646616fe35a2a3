/**
 * The Node.js version check (scripts/check-node.cjs): which versions it refuses and what it says, and — where the
 * machine has an older Node.js, such as Debian's /usr/bin/node 20 — that `npm ci`, `npm start` and `npm test` run with
 * it stop at once with that message instead of failing later. The bin's check is tested on the installed package
 * (package.test.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { copyFileSync, existsSync, readFileSync } from "node:fs"
import { delimiter, dirname, join } from "node:path"
import { minimum, npmCli, olderNode, repoRoot, versionProblem } from "../support/node.ts"
import { tempDirSync } from "../support/tempDir.ts"

const needed = `${minimum.major}.${minimum.minor}`

describe("Node.js version check", () => {
  it("takes the minimum from package.json's engines.node", () => {
    const { engines } = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { engines: { node: string } }
    assert.strictEqual(engines.node, `>=${needed}`)
  })

  it("accepts the minimum and newer, refuses older, and names both versions and the npx fallback", () => {
    for (const version of [needed + ".0", "22.20.1", "23.0.0", "24.21.0", "30.1.2"]) {
      assert.isUndefined(versionProblem(version, "npm test"), version)
    }
    for (const version of ["20.20.2", "22.18.9", "18.0.0", "v21.7.3"]) {
      const problem = versionProblem(version, "npm start")
      assert.isDefined(problem, version)
      assert.include(problem, `Node.js ${needed} or newer`)
      assert.include(problem, `this is Node.js ${version}`)
      assert.include(problem, "npx -y -p node@24 -- npm start")
    }
  })

  describe.skipIf(olderNode === undefined)(`with an older Node.js on this machine (${olderNode?.path} ${olderNode?.version})`, () => {
    const old = olderNode!
    /** Runs with the older Node.js first on PATH, as on a server whose system Node.js is old. */
    const runOld = (args: ReadonlyArray<string>, cwd = repoRoot) => {
      const result = spawnSync(old.path, args, {
        cwd,
        encoding: "utf8",
        timeout: 30_000,
        env: { ...process.env, PATH: [dirname(old.path), "/usr/bin", "/bin"].join(delimiter), npm_config_update_notifier: "false" }
      })
      return { code: result.status, out: `${result.stdout}${result.stderr}` }
    }
    const assertRefused = (result: { code: number | null; out: string }, command: string) => {
      assert.strictEqual(result.code, 1, result.out)
      assert.include(result.out, `needs Node.js ${needed} or newer; this is Node.js ${old.version}`)
      assert.include(result.out, `npx -y -p node@24 -- ${command}`)
    }

    it("scripts/check-node.cjs exits 1 with the message", () => {
      assertRefused(runOld(["scripts/check-node.cjs", "npm", "test"]), "npm test")
    })

    it("npm start and npm test stop before anything loads TypeScript", () => {
      for (const command of ["start", "test"]) {
        const result = runOld([npmCli(), command])
        assertRefused(result, `npm ${command}`)
        assert.notInclude(result.out, "ERR_UNKNOWN_FILE_EXTENSION")
      }
    })

    it("npm ci stops at the engine check (engine-strict) and installs nothing", () => {
      const project = tempDirSync("tpc-old-node-ci-")
      for (const file of ["package.json", "package-lock.json", ".npmrc"]) copyFileSync(join(repoRoot, file), join(project, file))
      const result = runOld([npmCli(), "ci", "--offline", "--ignore-scripts", "--no-audit", "--no-fund"], project)
      assert.notStrictEqual(result.code, 0, result.out)
      assert.include(result.out, "EBADENGINE")
      assert.include(result.out, `Required: {"node":">=${needed}"}`)
      assert.include(result.out, `"node":"v${old.version}"`)
      const installedSomething = existsSync(join(project, "node_modules"))
      assert.isFalse(installedSomething, "npm ci installed packages")
    })
  })
})
