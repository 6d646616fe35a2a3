/**
 * The package as users get it, without network: `npm pack` (prepack builds dist/), then an empty project that
 * receives the production dependencies this checkout has installed (hard links, copies across file systems, with
 * their bin links) and `npm install --offline` of the tarball with an empty npm cache — so npm itself unpacks the
 * tarball, links the bin and checks that the dependencies it declares are there; anything missing would have to come
 * from the registry and fails the install.
 */
import { spawnSync, type SpawnSyncReturns } from "node:child_process"
import {
  copyFileSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { dirname, join, relative } from "node:path"
import { npmCli, repoRoot, shellEnv } from "../support/node.ts"

export interface PackedFile {
  readonly path: string
}

export interface Installed {
  readonly tarball: string
  readonly files: ReadonlyArray<string>
  readonly project: string
  readonly packageDir: string
  readonly npmCache: string
}

/** Environment of npm and of the installed bin: this Node.js first on PATH, npm quiet. */
export const childEnv = (): NodeJS.ProcessEnv =>
  shellEnv({ npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" })

const describeRun = (what: string, result: SpawnSyncReturns<string>) =>
  `${what}: exit ${result.status}${result.error !== undefined ? ` (${result.error.message})` : ""}\n${result.stdout}\n${result.stderr}`

/** Runs npm (or npx) with this Node.js; fails with its whole output unless it exits 0. */
export const npm = (args: ReadonlyArray<string>, cwd: string, tool: "npm" | "npx" = "npm"): string => {
  const cli = tool === "npm" ? npmCli() : join(dirname(npmCli()), "npx-cli.js")
  const result = spawnSync(process.execPath, [cli, ...args], { cwd, env: childEnv(), encoding: "utf8", timeout: 120_000 })
  if (result.status !== 0) throw new Error(describeRun(`${tool} ${args.join(" ")}`, result))
  return result.stdout
}

/** A directory tree as hard links (copies where the file systems differ); symbolic links stay links. */
const linkTree = (from: string, to: string): void => {
  const stat = lstatSync(from)
  if (stat.isSymbolicLink()) {
    symlinkSync(readlinkSync(from), to)
  } else if (stat.isDirectory()) {
    mkdirSync(to, { recursive: true })
    for (const entry of readdirSync(from)) linkTree(join(from, entry), join(to, entry))
  } else {
    try {
      linkSync(from, to)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EXDEV") throw error
      copyFileSync(from, to)
    }
  }
}

/** The top-level packages package-lock.json installs for production (dependencies and their own, peers included). */
const productionPackages = (): ReadonlyArray<string> => {
  const lock = JSON.parse(readFileSync(join(repoRoot, "package-lock.json"), "utf8")) as {
    packages: Record<string, { dev?: boolean; devOptional?: boolean }>
  }
  return Object.entries(lock.packages)
    .filter(([path, entry]) => /^node_modules\/(@[^/]+\/)?[^/]+$/.test(path) && entry.dev !== true && entry.devOptional !== true)
    .map(([path]) => path)
}

/** Gives `project` the production dependencies of this checkout, with the bin links npm made for them. */
const provideDependencies = (project: string): void => {
  const packages = productionPackages()
  for (const path of packages) {
    if (!existsSync(join(repoRoot, path))) throw new Error(`${path} is in package-lock.json but not installed: run npm ci`)
    linkTree(join(repoRoot, path), join(project, path))
  }
  const bins = join(repoRoot, "node_modules", ".bin")
  mkdirSync(join(project, "node_modules", ".bin"), { recursive: true })
  for (const name of existsSync(bins) ? readdirSync(bins) : []) {
    const target = readlinkSync(join(bins, name))
    const owner = relative(join(repoRoot, "node_modules"), join(bins, target))
    if (packages.some((path) => owner.startsWith(path.slice("node_modules/".length) + "/"))) {
      symlinkSync(target, join(project, "node_modules", ".bin", name))
    }
  }
}

/** Packs this checkout into `dir` and installs the tarball into a new project there. */
export const packAndInstall = (dir: string): Installed => {
  const packed = JSON.parse(npm(["pack", "--json", "--pack-destination", dir], repoRoot).replace(/^[^[]*/, "")) as ReadonlyArray<{
    filename: string
    files: ReadonlyArray<PackedFile>
  }>
  const [tarball] = packed
  if (tarball === undefined) throw new Error("npm pack reported no tarball")

  const project = join(dir, "app")
  mkdirSync(project)
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }, null, 2))
  provideDependencies(project)
  const npmCache = join(dir, "npm-cache")
  npm(["install", "--offline", "--cache", npmCache, join(dir, tarball.filename)], project)
  return {
    tarball: join(dir, tarball.filename),
    files: tarball.files.map((file) => file.path),
    project,
    packageDir: join(project, "node_modules", "teams-presence-connector"),
    npmCache
  }
}
