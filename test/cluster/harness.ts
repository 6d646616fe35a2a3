/**
 * A cluster on this machine for the tests: real runner processes (`run --cluster`) on one PostgreSQL database, a
 * simulated Graph tenant and a simulated PBX system per tenant, and a TCP front that spreads connections over the
 * runners (as a load balancer would; a runner that refuses the connection is skipped). Tenant `default` comes from the
 * runners' configuration file, the others from the state store.
 */
import { PgClient } from "@effect/sql-pg"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs"
import { connect, createServer, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startFront } from "../../src/cluster/Front.ts"
import { ConfigProvider, Context, Effect, Layer, Redacted, Schema, type Scope } from "effect"
import * as YAML from "yaml"
import { connectorSnippet, startGraphSimulator } from "../../src/simulators/graph/Standalone.ts"
import type { GraphSimulatorHandle } from "../../src/simulators/graph/GraphSimulator.ts"
import { startPbxSimulator } from "../../src/simulators/pbx/Standalone.ts"
import type { PbxSimulatorHandle } from "../../src/simulators/pbx/PbxSimulator.ts"
import { loadPopulation, type SimPopulation } from "../../src/simulators/UsersFile.ts"
import { StateStore, TenantConfig, TenantId } from "../../src/state/StateStore.ts"
import { shellEnv } from "../support/node.ts"
import { freePort, until } from "../support/waiting.ts"
import { testDatabaseUrl } from "../support/postgres.ts"
import { randomBytes } from "node:crypto"

const main = join(import.meta.dirname, "../../src/main.ts")
export const pbxPassword = "cluster-test-app-password"
export const adminPassword = "cluster-test-admin-password"

/** A TCP front spreading connections over the runners (src/cluster/Front.ts), as a load balancer would. */
export const tcpFront = (targets: () => ReadonlyArray<number>) => startFront({ targets })

export interface SimTenant {
  readonly id: TenantId
  readonly population: SimPopulation
  readonly graph: GraphSimulatorHandle
  /** The tenant's configuration as a connector.yaml object (push mode, through the front). */
  readonly config: Record<string, unknown>
  readonly pathPrefix: string
}

/** A simulated Microsoft tenant for connector tenant `id`, its notifications through the front. */
export const simTenant = (id: string, frontPort: number, users: number) =>
  Effect.gen(function*() {
    const population = yield* loadPopulation({ users })
    const graph = yield* startGraphSimulator({ port: 0, host: "127.0.0.1", users })
    const pathPrefix = id === "default" ? "" : `/t/${id}`
    const config = {
      ...(YAML.parse(connectorSnippet(graph.url, population)) as Record<string, unknown>),
      notifications: { mode: "push", publicBaseUrl: `http://127.0.0.1:${frontPort}${pathPrefix}` },
      pbx: { masterPbx: population.pbxs.find((p) => p.master)!.name, appPassword: pbxPassword },
      admin: { password: adminPassword }
    }
    return { id: TenantId.make(id), population, graph, config, pathPrefix } satisfies SimTenant
  })

/** The tenant's PBX system (master and slaves), connecting through the front. */
export const simPbx = (tenant: SimTenant, frontPort: number, users: number): Effect.Effect<PbxSimulatorHandle, unknown, Scope.Scope> =>
  startPbxSimulator({
    connect: `ws://127.0.0.1:${frontPort}${tenant.pathPrefix}/pbx`,
    password: Redacted.make(pbxPassword),
    users,
    controlPort: 0,
    reconnectDelayMs: 200
  })

export interface Runner {
  readonly name: string
  readonly httpPort: number
  readonly clusterPort: number
  readonly child: ChildProcess
  readonly logFile: string
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>
}

export interface ClusterEnv {
  readonly databaseUrl: string
  readonly stateKey: string
  readonly dir: string
}

export const clusterEnv = (databaseUrl: string): ClusterEnv => ({
  databaseUrl,
  stateKey: randomBytes(32).toString("base64"),
  dir: mkdtempSync(join(tmpdir(), "tpc-cluster-"))
})

/** The state store as the runners see it, for the test to put tenants in. */
export const storeFor = (env: ClusterEnv) =>
  Layer.build(Layer.fresh(StateStore.layerPostgres({ url: Redacted.make(env.databaseUrl), maxConnections: 3 }).pipe(
    Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ CONNECTOR_STATE_KEY: env.stateKey })))
  ))).pipe(Effect.map((context) => Context.get(context, StateStore)), Effect.orDie)

export const putTenant = (store: StateStore["Service"], tenant: SimTenant) =>
  Effect.gen(function*() {
    const config = yield* Schema.decodeUnknownEffect(TenantConfig)(tenant.config)
    yield* store.tenants.put(tenant.id, config)
  }).pipe(Effect.orDie)

export const sqlFor = (url: string) =>
  Layer.build(Layer.fresh(PgClient.layer({ url: Redacted.make(url), maxConnections: 2 }))).pipe(
    Effect.map((context) => Context.get(context, PgClient.PgClient)),
    Effect.orDie
  )

/** Three changes the cluster tests make in turn, with what the default mapping writes for each. */
export const clusterStates = [
  { availability: "Busy", activity: "InAMeeting", pbx: "meeting" },
  { availability: "Away", activity: "Away", pbx: "away" },
  { availability: "DoNotDisturb", activity: "DoNotDisturb", pbx: "dnd" }
] as const

/**
 * The scene of a cluster test before its runners start: the database, a front over the runners the test pushes into
 * `runners`, a simulated tenant per id (the first is `default`, from the runners' configuration file; the others are
 * put in the store, each configuration first passed through `configure` when it names the tenant).
 */
export const clusterScene = <const Ids extends ReadonlyArray<string>>(
  tenantIds: Ids,
  users: number,
  configure: Record<string, (config: Record<string, unknown>) => Record<string, unknown>> = {}
) =>
  Effect.gen(function*() {
    const env = clusterEnv(yield* Effect.promise(testDatabaseUrl))
    const runners: Array<Runner> = []
    const front = yield* tcpFront(() => runners.map((r) => r.httpPort))
    const tenants = yield* Effect.forEach(tenantIds, (id) =>
      simTenant(id, front.port, users).pipe(Effect.map((tenant): SimTenant => {
        const change = configure[id]
        return change === undefined ? tenant : { ...tenant, config: change(tenant.config) }
      })))
    const store = yield* storeFor(env)
    for (const tenant of tenants.slice(1)) yield* putTenant(store, tenant)
    const sql = yield* sqlFor(env.databaseUrl)
    return { env, runners, front, tenants: tenants as { -readonly [K in keyof Ids]: SimTenant }, store, sql }
  })

/** The last 40 warning and error lines (and the last 10 lines) of a runner's log. */
const logTail = (logFile: string): string => {
  const lines = readFileSync(logFile, "utf8").split("\n").filter((line) => line !== "")
  const bad = lines.filter((line) => /"(log)?level":"(warn|warning|error|fatal)"/i.test(line) || !line.startsWith("{"))
  return [...bad.slice(-40), "…", ...lines.slice(-10)].map((line) => line.slice(0, 400)).join("\n")
}

/**
 * Starts a runner process; `databaseUrl` overrides the env's (a runner behind a proxy). The scope's end kills it.
 * `defaultTenant` is the configuration file's tenant (all runners share the data directory, as they would share a volume).
 */
export const startRunner = (
  env: ClusterEnv,
  name: string,
  defaultTenant: SimTenant,
  databaseUrl = env.databaseUrl,
  timing: "fast" | "standard" = "fast",
  /** The ports of a runner started again (the same runner id), else new ones. */
  ports?: { readonly httpPort: number; readonly clusterPort: number }
): Effect.Effect<Runner, never, Scope.Scope> =>
  Effect.gen(function*() {
    const httpPort = ports?.httpPort ?? (yield* freePort)
    const clusterPort = ports?.clusterPort ?? (yield* freePort)
    const configFile = join(env.dir, `${name}.yaml`)
    writeFileSync(configFile, YAML.stringify({
      ...defaultTenant.config,
      http: { host: "127.0.0.1", port: httpPort },
      dataDir: join(env.dir, "data"),
      log: { format: "json", level: process.env["CLUSTER_TEST_LOG"] ?? "info" }
    }))
    const logFile = join(env.dir, `${name}.log`)
    const out = openSync(logFile, "a")
    const child = spawn(process.execPath, [main, "run", "--cluster", "--config", configFile], {
      env: shellEnv({
        CONNECTOR_DATABASE_URL: databaseUrl,
        CONNECTOR_STATE_KEY: env.stateKey,
        CONNECTOR_CLUSTER_PORT: String(clusterPort),
        CONNECTOR_CLUSTER_TIMING: timing,
        // Node's compile cache, shared by the runners of a test: a runner started again loads its modules faster.
        NODE_COMPILE_CACHE: join(env.dir, "compile-cache")
      }),
      detached: true,
      stdio: ["ignore", out, out]
    })
    yield* Effect.addFinalizer((exit) => Effect.sync(() => {
      try {
        process.kill(-child.pid!, "SIGKILL")
      } catch {
        // already gone
      }
      // A failed test leaves the runner's last warnings and errors in its output (its directory is removed after it).
      if (exit._tag === "Failure") console.log(`runner ${name}'s last warnings and errors:\n${logTail(logFile)}`)
    }))
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
    return { name, httpPort, clusterPort, child, logFile, exited }
  })

/** tenant → [runner id, epoch] from the store's owner records. */
export const owners = (sql: PgClient.PgClient) =>
  sql<{ tenant_id: string; runner: string; epoch: string }>`SELECT tenant_id, runner, epoch::text AS epoch FROM tenant_owner`.pipe(
    Effect.map((rows) => new Map(rows.map((r) => [r.tenant_id, { runner: r.runner, epoch: Number(r.epoch) }]))),
    Effect.orDie
  )

/**
 * The runner owning each of the tenants, once the runners have shared them out: every one owned, unchanged for 6 s
 * (shards move while runners start).
 */
export const settledOwners = <Id extends string>(sql: PgClient.PgClient, ids: ReadonlyArray<Id>) => {
  let seen = { key: "", since: Date.now() }
  return until(`${ids.join(" and ")} owned, and settled`, Effect.map(owners(sql), (now) => {
    const placed = ids.map((id) => now.get(id)?.runner ?? "")
    if (placed.join(" ") !== seen.key) seen = { key: placed.join(" "), since: Date.now() }
    return placed.every((runner) => runner !== "") && Date.now() - seen.since >= 6_000
      ? Object.fromEntries(ids.map((id, i) => [id, placed[i]!])) as Record<Id, string>
      : undefined
  }), 90_000)
}

/** Live presence subscriptions per creator (technical account) in a Graph simulator. */
export const presenceSubscriptions = (graph: GraphSimulatorHandle) =>
  Effect.promise(async () => {
    const body = (await (await fetch(`${graph.url}/_sim/subscriptions`)).json()) as {
      subscriptions: ReadonlyArray<{ kind: string; creatorId: string; notificationUrl: string }>
    }
    const perCreator = new Map<string, number>()
    for (const s of body.subscriptions) if (s.kind === "presence") perCreator.set(s.creatorId, (perCreator.get(s.creatorId) ?? 0) + 1)
    return perCreator
  })

/** The webhook endpoints as a Graph simulator judges them: POSTs, slow ones (> 2.9 s), failures, ok / delayed / dropped. */
export const webhookEndpoints = (graph: GraphSimulatorHandle) =>
  Effect.promise(async () => {
    const body = (await (await fetch(`${graph.url}/_sim/subscriptions`)).json()) as {
      endpoints: ReadonlyArray<{ url: string; posts: number; slow: number; failures: number; state: "ok" | "delayed" | "dropped" }>
    }
    return body.endpoints
  })

export const runnerId = (runner: Runner) => `127.0.0.1:${runner.httpPort}`

/** A TCP proxy to PostgreSQL that can be frozen: no byte passes, no connection is closed (a network partition). */
export const freezableProxy = (targetPort: number) =>
  Effect.acquireRelease(
    Effect.callback<{ port: number; freeze: () => void; close: () => void }>((resume) => {
      let frozen = false
      const sockets = new Set<Socket>()
      const server = createServer((inbound) => {
        if (frozen) return // a new connection hangs, as behind a dead link
        const outbound = connect(targetPort, "127.0.0.1")
        for (const s of [inbound, outbound]) {
          sockets.add(s)
          s.on("error", () => s.destroy())
        }
        inbound.on("data", (data) => { if (!frozen) outbound.write(data) })
        outbound.on("data", (data) => { if (!frozen) inbound.write(data) })
        inbound.on("close", () => { if (!frozen) outbound.destroy() })
        outbound.on("close", () => { if (!frozen) inbound.destroy() })
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(Effect.succeed({
          port: typeof address === "object" && address !== null ? address.port : 0,
          freeze: () => { frozen = true },
          close: () => { for (const s of sockets) s.destroy(); server.close() }
        }))
      })
    }),
    (proxy) => Effect.sync(proxy.close)
  )

/** When (ms) a runner's log says it began to own / to stop a tenant, per tenant (the last time). */
export const ownershipLog = (logFile: string) => {
  const owned = new Map<string, number>()
  const stopping = new Map<string, number>()
  for (const line of readFileSync(logFile, "utf8").split("\n")) {
    if (!line.startsWith("{")) continue
    const entry = JSON.parse(line) as { message?: unknown; timestamp?: string }
    if (typeof entry.message !== "string" || entry.timestamp === undefined) continue
    const match = /^cluster: tenant (\S+) (owned by|stopping on)/.exec(entry.message)
    if (match !== null) (match[2] === "owned by" ? owned : stopping).set(match[1]!, Date.parse(entry.timestamp))
  }
  return { owned, stopping }
}
