/**
 * The browser of the browser tests, found without a system package manager and driven by playwright-core: Debian's
 * /usr/bin/chromium where it is installed, otherwise the Chromium that the @sparticuz/chromium npm package ships
 * (unpacked once into node_modules/.cache), with the libraries that package bundles (libnss3, libnspr4, …) on the
 * browser's LD_LIBRARY_PATH where the system lacks them. The test output names the browser that ran.
 *
 * `TEST_BROWSER=npm` takes the npm browser even where Debian's is installed (`TEST_BROWSER=system` insists on Debian's);
 * `TEST_BROWSER_LIBRARIES=bundled` gives the npm browser its bundled libraries even where the system has its own.
 */
import { execFile } from "node:child_process"
import { createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { pipeline } from "node:stream/promises"
import { brotliDecompressSync, createBrotliDecompress } from "node:zlib"
import { Console, Effect } from "effect"
import { type Browser, chromium } from "playwright-core"
import { extractTar } from "./tar.ts"

export const systemChromium = "/usr/bin/chromium"

/**
 * Flags for a headless browser on a machine without network (playwright-core adds --headless): no sandbox (tests
 * often run as root), no GPU, and none of the background traffic (updates, sync, QUIC) that would wait on the network.
 */
export const chromiumFlags: ReadonlyArray<string> = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

export interface ChromiumOptions {
  /** "system": Debian's only; "npm": the npm package's even where Debian's is installed; default: Debian's if present. */
  readonly browser?: "system" | "npm" | undefined
  /** "bundled": the npm browser gets its bundled libraries even where the system has its own; default: where needed. */
  readonly libraries?: "bundled" | undefined
}

/** The options from TEST_BROWSER and TEST_BROWSER_LIBRARIES. */
export const optionsFromEnv = (env: NodeJS.ProcessEnv = process.env): ChromiumOptions => ({
  browser: env["TEST_BROWSER"] === "npm" || env["TEST_BROWSER"] === "system" ? env["TEST_BROWSER"] : undefined,
  libraries: env["TEST_BROWSER_LIBRARIES"] === "bundled" ? "bundled" : undefined
})

export interface ChromiumChoice {
  readonly executablePath: string
  /** Variables for the browser's process: LD_LIBRARY_PATH when it uses the bundled libraries. */
  readonly env: Readonly<Record<string, string>>
  /** Which browser, and why, for the test output. */
  readonly description: string
}

/** The npm package's files and the cache directory its browser is unpacked into (once per package version). */
const npmPackage = () => {
  const packageDir = dirname(dirname(createRequire(import.meta.url).resolve("@sparticuz/chromium")))
  const { version } = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) as { version: string }
  const nodeModules = join(packageDir, "..", "..")
  return { version, bin: join(packageDir, "bin"), cache: join(nodeModules, ".cache", "teams-presence-connector", `chromium-${version}`) }
}

/** A fresh name beside `target`, renamed onto it when complete: a concurrent or interrupted unpack leaves no half file. */
const partialName = (target: string) => `${target}.partial-${process.pid}-${crypto.randomUUID()}`

const unpackBinary = async (source: string, target: string): Promise<boolean> => {
  if (existsSync(target)) return false
  mkdirSync(dirname(target), { recursive: true })
  const partial = partialName(target)
  await pipeline(createReadStream(source), createBrotliDecompress(), createWriteStream(partial, { mode: 0o755 }))
  renameSync(partial, target)
  return true
}

const unpackArchive = (source: string, target: string): void => {
  if (existsSync(target)) return
  const partial = partialName(target)
  extractTar(brotliDecompressSync(readFileSync(source)), partial)
  try {
    renameSync(partial, target)
  } catch (error) {
    rmSync(partial, { recursive: true, force: true })
    if (!existsSync(target)) throw error
  }
}

/** The shared libraries the dynamic linker cannot find for `executable` (ldd), or undefined where there is no ldd. */
export const missingLibraries = (executable: string, env: Readonly<Record<string, string>>) =>
  new Promise<ReadonlyArray<string> | undefined>((resolve) => {
    execFile("ldd", [executable], { env: { ...process.env, ...env } }, (error, stdout) => {
      if (error !== null && (error as NodeJS.ErrnoException).code === "ENOENT") return resolve(undefined)
      resolve([...stdout.matchAll(/^\s*(\S+) => not found/gm)].map((match) => match[1]!))
    })
  })

/** Picks the browser and prepares it: Debian's, else the npm one (unpacked on first use), with libraries as needed. */
export const findChromium = async (options: ChromiumOptions = optionsFromEnv()): Promise<ChromiumChoice> => {
  const wanted = options.browser
  if (wanted !== "npm" && existsSync(systemChromium)) {
    return { executablePath: systemChromium, env: {}, description: `Debian's chromium (${systemChromium})` }
  }
  if (wanted === "system") throw new Error(`TEST_BROWSER=system, but there is no ${systemChromium}`)

  const npm = npmPackage()
  const executablePath = join(npm.cache, "chromium")
  const started = performance.now()
  const unpacked = await unpackBinary(join(npm.bin, "chromium.br"), executablePath)
  const origin = `@sparticuz/chromium ${npm.version} (${executablePath}${
    unpacked ? `, unpacked in ${((performance.now() - started) / 1000).toFixed(1)} s` : ""
  })`

  const forced = options.libraries === "bundled"
  const missing = forced ? [] : await missingLibraries(executablePath, {})
  if (!forced && missing !== undefined && missing.length === 0) {
    return { executablePath, env: {}, description: `${origin} with the system's libraries` }
  }

  unpackArchive(join(npm.bin, "al2023.tar.br"), join(npm.cache, "al2023"))
  const libraries = join(npm.cache, "al2023", "lib")
  const inherited = process.env["LD_LIBRARY_PATH"]
  const env = { LD_LIBRARY_PATH: inherited === undefined || inherited === "" ? libraries : `${libraries}:${inherited}` }
  const stillMissing = await missingLibraries(executablePath, env)
  if (stillMissing !== undefined && stillMissing.length > 0) {
    throw new Error(`${origin} needs ${stillMissing.join(", ")}, which neither the system nor the package provides`)
  }
  const why = forced ? "asked for" : missing === undefined ? "no ldd to ask" : `the system lacks ${missing.join(", ")}`
  return { executablePath, env, description: `${origin} with its bundled libraries from ${libraries} (${why})` }
}

/** Launches the chosen browser for the scope (each launch has a fresh temporary profile) and says which one ran. */
export const launchChromium = Effect.fn("launchChromium")(function*(options: ChromiumOptions = optionsFromEnv()) {
  const choice = yield* Effect.promise(() => findChromium(options))
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined) env[name] = value
  const browser = yield* Effect.acquireRelease(
    Effect.promise(() =>
      chromium.launch({ executablePath: choice.executablePath, headless: true, args: [...chromiumFlags], env: { ...env, ...choice.env } })
    ),
    (browser: Browser) => Effect.promise(() => browser.close())
  )
  yield* Console.log(`browser: Chromium ${browser.version()}, ${choice.description}`)
  return { browser, choice }
})

/** A Teams presence and what the default mapping writes for it in the PBX. */
export type SceneEntry = readonly [availability: string, activity: string, written: string]

/** Teams presences that show the mapping at work on the status page, with what the default mapping writes for them. */
export const mappingScene: ReadonlyArray<SceneEntry> = [
  ["Busy", "InACall", "on-the-phone"],
  ["Away", "Away", "away"],
  ["DoNotDisturb", "Presenting", "on-the-phone"],
  ["DoNotDisturb", "DoNotDisturb", "dnd"],
  ["BeRightBack", "BeRightBack", "away"],
  ["Busy", "Busy", "busy"]
]
