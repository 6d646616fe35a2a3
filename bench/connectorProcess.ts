/**
 * Runs the connector as a child process (`node src/main.ts run --config <file>`), so its memory is measured alone:
 * a generated configuration file, an RSS sampler and an orderly stop.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createWriteStream, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import * as YAML from "yaml"
import { processMemory } from "./stats.ts"

/** The start script's command (package.json) and the bin's shebang (src/bin.ts), each split into env and flags. */
const shippedCommands = (repoRoot: string) => {
  const manifest = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { scripts?: { start?: string } }
  const start = manifest.scripts?.start ?? ""
  // The start script checks the Node.js version first:
  // `node scripts/check-node.cjs … && exec env NAME=value … node [flags] src/main.ts` (the `env …` part optional).
  const startCommand = /(?:^|&&\s*)(?:exec\s+)?(?:env\s+((?:\w+=\S*\s+)+))?node\s+([^&]*?)\s*src\/main\.ts$/.exec(start.trim())
  if (startCommand === null) throw new Error(`package.json's start script does not end in "node [flags] src/main.ts": ${start}`)
  const shebang = readFileSync(join(repoRoot, "src", "bin.ts"), "utf8").split("\n", 1)[0] ?? ""
  const shebangCommand = /^#!\/usr\/bin\/env\s+(?:-S\s+)?((?:\w+=\S*\s+)*)node\b(.*)$/.exec(shebang)
  if (shebangCommand === null) throw new Error(`src/bin.ts does not start with a node shebang: ${shebang}`)
  return {
    start: { env: startCommand[1] ?? "", flags: startCommand[2]! },
    shebang: { env: shebangCommand[1] ?? "", flags: shebangCommand[2]! }
  }
}

/**
 * The Node flags the connector ships with: the flags of `npm start` (package.json), with `${NAME:-default}` taken from
 * the environment as the shell would. The bin's shebang (src/bin.ts) must carry the same flags (with the defaults);
 * a difference fails here, so that the bench never measures something that does not ship.
 */
export const shippedNodeFlags = (repoRoot: string, env: NodeJS.ProcessEnv = process.env): ReadonlyArray<string> => {
  const flagsOf = (command: string, expand: (name: string, fallback: string) => string) =>
    command.replace(/\$\{(\w+):-([^}]*)\}/g, (_, name: string, fallback: string) => expand(name, fallback))
      .split(/\s+/)
      .filter((word) => word.startsWith("--"))
  const { start, shebang } = shippedCommands(repoRoot)
  const defaults = flagsOf(start.flags, (_, fallback) => fallback).join(" ")
  const inShebang = flagsOf(shebang.flags, (_, fallback) => fallback).join(" ")
  if (defaults !== inShebang) {
    throw new Error(`the start script's Node flags (${defaults}) differ from the shebang's of src/bin.ts (${inShebang})`)
  }
  return flagsOf(start.flags, (name, fallback) => {
    const value = env[name]
    return value === undefined || value === "" ? fallback : value
  })
}

/**
 * The environment the connector ships with: the `NAME=value` words before `node` in the start script and the shebang
 * (glibc's `MALLOC_ARENA_MAX`), which must agree. `BENCH_NODE_ENV="NAME=value …"` replaces them ("" sets none), as
 * BENCH_NODE_FLAGS replaces the flags.
 */
export const shippedNodeEnv = (repoRoot: string, env: NodeJS.ProcessEnv = process.env): Readonly<Record<string, string>> => {
  const assignments = (words: string) =>
    words.split(/\s+/).filter((word) => word.includes("=")).map((word) => [word.slice(0, word.indexOf("=")), word.slice(word.indexOf("=") + 1)] as const)
  const { start, shebang } = shippedCommands(repoRoot)
  if (start.env.trim() !== shebang.env.trim()) {
    throw new Error(`the start script's environment (${start.env.trim()}) differs from the shebang's of src/bin.ts (${shebang.env.trim()})`)
  }
  const chosen = env["BENCH_NODE_ENV"]
  return Object.fromEntries(assignments(chosen ?? start.env))
}

export interface ConnectorProcess {
  readonly pid: number
  readonly spawnedAt: number
  readonly baseUrl: string
  readonly logFile: string
  /** Highest VmRSS seen by the sampler since the last reset (MB). */
  peakSampledRssMb(): number
  resetPeak(): void
  /** VmHWM: the kernel's peak resident set of the whole process life (MB). */
  peakRssMb(): number
  exited(): boolean
  /** Starts a new window of the in-process probe (event-loop delay, memory peaks): SIGUSR2. */
  resetProbe(): void
  /** The probe's figures for the current window, if it has written any. */
  probe(): ConnectorProbe | undefined
  /** Asks the probe for a full collection and the live heap left (needs `--expose-gc`), optionally a heap snapshot. */
  requestLiveHeap(snapshot: boolean): void
  stop(): Promise<number | null>
}

export interface ConnectorProbe {
  readonly eventLoopDelayMs: { readonly p50: number; readonly p99: number; readonly max: number }
  readonly peakMb: { readonly rss: number; readonly heapTotal: number; readonly heapUsed: number; readonly externalAndBuffers: number }
  /** V8's heap limit (what `--max-old-space-size` and the semi-spaces allow). */
  readonly heapLimitMb?: number
  /** The answer to the last `requestLiveHeap`: the heap after two full collections. */
  readonly liveHeap?: { readonly heapUsedMb: number; readonly codeMb: number; readonly rssMb: number; readonly snapshot?: string }
  /** With BENCH_GC_SAMPLE_MS (bench/soak.ts): the heap after each forced full collection. */
  readonly heapAfterGc?: ReadonlyArray<{
    readonly atSeconds: number
    readonly heapUsedMb: number
    readonly codeMb: number
    readonly rssMb: number
    readonly externalMb: number
  }>
  /** Notification POSTs from Node's HTTP server handing the request on to the answer finished (bench/probe.ts). */
  readonly connections?: { readonly accepted: number; readonly open: number; readonly mostOpen: number; readonly postsOnNewConnection: number }
  readonly notificationRequestMs?: { readonly count: number; readonly p50: number; readonly p99: number; readonly max: number }
  /** The main thread's collections by kind and its turns over 100 ms since the last reset (bench/probe.ts). */
  readonly gc?: unknown
  /** Stalls of the event loop and the main thread's time by second of the window (bench/probe.ts `stallFigures`). */
  readonly stalls?: {
    readonly mainThreadBySecond?: { readonly runMs: ReadonlyArray<number>; readonly waitingForCpuMs: ReadonlyArray<number> }
    readonly majorGcAtS?: ReadonlyArray<number>
  }
}

export const writeConfig = (dir: string, config: unknown): string => {
  const file = join(dir, "connector.yaml")
  writeFileSync(file, YAML.stringify(config), { mode: 0o600 })
  return file
}

export const startConnector = (options: {
  readonly repoRoot: string
  readonly configFile: string
  readonly port: number
  readonly logFile: string
  /** Node/V8 flags before the script: `shippedNodeFlags()` to measure what ships. */
  readonly nodeFlags: ReadonlyArray<string>
  /** Writes V8 CPU profiles of the connector (main thread and workers) here when set. */
  readonly cpuProfileDir?: string | undefined
  /** More environment for the child (the probe's soak settings). */
  readonly env?: Readonly<Record<string, string>> | undefined
  /** How long `stop` waits after SIGTERM before SIGKILL (default 15 s; a CPU profile is written only on a clean exit). */
  readonly killAfterMillis?: number | undefined
}): ConnectorProcess => {
  const log = createWriteStream(options.logFile)
  const spawnedAt = performance.now()
  const profile = options.cpuProfileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfileDir}`]
  const probeFile = `${options.logFile}.probe.json`
  const probe = ["--import", "./bench/probe.ts"]
  const nodeFlags = options.nodeFlags
  const child: ChildProcess = spawn(process.execPath, [...nodeFlags, ...profile, ...probe, "src/main.ts", "run", "--config", options.configFile], {
    cwd: options.repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...shippedNodeEnv(options.repoRoot), NODE_ENV: "production", BENCH_PROBE_FILE: probeFile, ...options.env }
  })
  child.stdout?.pipe(log, { end: false })
  child.stderr?.pipe(log, { end: false })
  const pid = child.pid ?? -1
  let exitCode: number | null | undefined
  const exit = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      exitCode = code
      resolve(code)
    })
  )
  let peak = 0
  const sampler = setInterval(() => {
    const memory = processMemory(pid)
    if (memory !== undefined) peak = Math.max(peak, memory.rssMb)
  }, 100)
  let lastHwm = 0
  return {
    pid,
    spawnedAt,
    baseUrl: `http://127.0.0.1:${options.port}`,
    logFile: options.logFile,
    peakSampledRssMb: () => peak,
    resetPeak: () => {
      peak = processMemory(pid)?.rssMb ?? 0
    },
    peakRssMb: () => {
      lastHwm = processMemory(pid)?.peakRssMb ?? lastHwm
      return lastHwm
    },
    exited: () => exitCode !== undefined,
    resetProbe: () => {
      if (exitCode === undefined) child.kill("SIGUSR2")
    },
    requestLiveHeap: (snapshot) => writeFileSync(`${probeFile}.live`, snapshot ? "snapshot" : "live"),
    probe: () => {
      try {
        return JSON.parse(readFileSync(probeFile, "utf8")) as ConnectorProbe
      } catch {
        return undefined
      }
    },
    stop: async () => {
      clearInterval(sampler)
      if (exitCode === undefined) {
        child.kill("SIGTERM")
        const timer = setTimeout(() => child.kill("SIGKILL"), options.killAfterMillis ?? 15_000)
        await exit
        clearTimeout(timer)
      }
      log.end()
      return exitCode ?? null
    }
  }
}
