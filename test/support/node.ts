/** The Node.js and npm the tests run child processes with, and an older Node.js where the machine has one. */
import { spawnSync } from "node:child_process"
import { existsSync, realpathSync } from "node:fs"
import { createRequire } from "node:module"
import { delimiter, dirname, join } from "node:path"

export const repoRoot = join(import.meta.dirname, "../..")

const checkNode = createRequire(import.meta.url)("../../scripts/check-node.cjs") as {
  readonly minimum: { readonly major: number; readonly minor: number }
  versionProblem(version: string, command?: string): string | undefined
}
export const { minimum, versionProblem } = checkNode

/** npm's CLI script: the one running these tests (npm_execpath), else the `npm` on PATH. */
export const npmCli = (): string => {
  const fromNpm = process.env["npm_execpath"]
  if (fromNpm !== undefined && /npm-cli\.js$/.test(fromNpm) && existsSync(fromNpm)) return fromNpm
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    const candidate = join(dir, "npm")
    if (existsSync(candidate)) return realpathSync(candidate)
  }
  throw new Error("npm is not on PATH")
}

/** PATH with this Node.js first, so that `node` and `#!/usr/bin/env node` in child processes mean this one. */
export const pathWithThisNode = (): string => [dirname(process.execPath), process.env["PATH"] ?? ""].join(delimiter)

/**
 * The environment of a child process started as a user would start it from a shell: this Node.js first on PATH and
 * none of the `npm_*` variables of the npm (or `npx -p node@24 --`) that runs the tests — an inherited
 * `npm_config_package` makes an inner `npx` try to install that package.
 */
export const shellEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) if (!/^npm_/i.test(name)) env[name] = value
  return { ...env, PATH: pathWithThisNode(), ...extra }
}

/** A Node.js older than package.json's engines.node on this machine (Debian's /usr/bin/node on many servers), if any. */
export const olderNode: { readonly path: string; readonly version: string } | undefined = (() => {
  for (const path of ["/usr/bin/node", "/usr/local/bin/node"]) {
    if (!existsSync(path) || realpathSync(path) === realpathSync(process.execPath)) continue
    const result = spawnSync(path, ["-p", "process.versions.node"], { encoding: "utf8", timeout: 10_000 })
    const version = result.stdout?.trim()
    if (result.status === 0 && version !== undefined && versionProblem(version) !== undefined) return { path, version }
  }
  return undefined
})()

/** Whether process `pid` still runs (a process of another user, EPERM, runs too). */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as { code?: string }).code === "EPERM"
  }
}
