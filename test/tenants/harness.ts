/**
 * `run`'s tenants in one process for the operators' tests (test/tenants/operators.test.ts): tenant `default` from a
 * configuration file and stored tenants, each with its own simulated Graph tenant and PBX system, all behind the one
 * public port, over real sockets.
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { Context, Effect, Layer, Redacted, Schema } from "effect"
import * as YAML from "yaml"
import { loadConfigFile } from "../../src/config/ConfigFile.ts"
import { settingsFromConfig } from "../../src/config/Settings.ts"
import { connectorSnippet, startGraphSimulator } from "../../src/simulators/graph/Standalone.ts"
import { startPbxSimulator } from "../../src/simulators/pbx/Standalone.ts"
import { loadPopulation } from "../../src/simulators/UsersFile.ts"
import { stateStoreLayer } from "../../src/state/StateSettings.ts"
import { StateStore, TenantConfig, TenantId } from "../../src/state/StateStore.ts"
import { runTenants } from "../../src/tenants/TenantsRun.ts"
import { makeTempDir } from "../support/tempDir.ts"
import { basicAuth, freePort, until } from "../support/waiting.ts"

export const users = 3
export const adminPassword = "operators-admin-password"
export const admin = basicAuth(adminPassword)

/** A simulated Graph tenant and the tenant configuration (as a tenant file holds it) that reaches it. */
export const simulatedTenant = (id: string, frontPort: number, extra: Record<string, unknown> = {}) =>
  Effect.gen(function*() {
    const population = yield* loadPopulation({ users })
    const graph = yield* startGraphSimulator({ port: 0, host: "127.0.0.1", users })
    const appPassword = `pbx-password-of-${id}`
    const config: Record<string, unknown> = {
      ...(YAML.parse(connectorSnippet(graph.url, population)) as Record<string, unknown>),
      notifications: { mode: "push", publicBaseUrl: `http://127.0.0.1:${frontPort}`, decryptWorkers: 1 },
      pbx: { masterPbx: population.pbxs.find((p) => p.master)!.name, appPassword },
      ...extra
    }
    const prefix = id === "default" ? "" : `/t/${id}`
    return { id: TenantId.make(id), population, graph, config, appPassword, prefix }
  })

export type SimTenant = Effect.Success<ReturnType<typeof simulatedTenant>>

/** The tenant's PBX (master and slave) connecting to the front on the tenant's path. */
export const pbxFor = (tenant: SimTenant, frontPort: number) =>
  startPbxSimulator({
    connect: `ws://127.0.0.1:${frontPort}${tenant.prefix}/pbx`,
    password: Redacted.make(tenant.appPassword),
    users,
    controlPort: 0,
    reconnectDelayMs: 200
  })

export type SimPbx = Effect.Success<ReturnType<typeof pbxFor>>

const SimSubscriptions = Schema.Struct({ subscriptions: Schema.Array(Schema.Struct({ id: Schema.String, kind: Schema.String })) })

/** The subscriptions the tenant's Graph simulator holds. */
export const subscriptionsOf = (tenant: SimTenant) =>
  Effect.promise(() => fetch(`${tenant.graph.url}/_sim/subscriptions`).then((r) => r.json())).pipe(
    Effect.flatMap(Schema.decodeUnknownEffect(SimSubscriptions)),
    Effect.map((body) => body.subscriptions),
    Effect.orDie
  )

/** The PBX users of a tenant matched to its Teams people: the guid each Teams person's presence is written to. */
export const peopleOf = Effect.fnUntraced(function*(tenant: SimTenant, pbx: SimPbx) {
  const pbxUsers = yield* until(`the PBX users of ${tenant.id}`, Effect.map(pbx.users, (list) => (list.length > 0 ? list : undefined)), 30_000)
  return tenant.population.people.flatMap((person) => {
    const user = pbxUsers.find((u) => (u.emails ?? []).includes(person.email))
    return person.teams && user !== undefined ? [{ graphId: person.graphId, guid: user.guid }] : []
  })
})

export const activityOf = (pbx: SimPbx, guid: string) =>
  Effect.map(pbx.presence(guid), (entries) => entries.find((e) => e.contact === "teams:")?.activity)

/**
 * Starts `run`'s tenants: `default` plus `stored` (ids) put into the store (files) before the start, each with its
 * simulators; `extra` adds keys to a stored tenant's configuration (its own status password), `process` to the
 * configuration file (security).
 */
export const startTenants = (
  stored: ReadonlyArray<string>,
  options: { readonly extra?: Record<string, Record<string, unknown>>; readonly process?: Record<string, unknown> } = {}
) =>
  Effect.gen(function*() {
    const dir = yield* makeTempDir("tpc-operators-")
    const port = yield* freePort
    const tenants = yield* Effect.forEach(["default", ...stored], (id) => simulatedTenant(id, port, options.extra?.[id]), { concurrency: 4 })
    const file = join(dir, "connector.yaml")
    writeFileSync(file, YAML.stringify({
      ...tenants[0]!.config,
      http: { host: "127.0.0.1", port },
      dataDir: join(dir, "data"),
      admin: { password: adminPassword },
      ...options.process
    }))
    const config = yield* loadConfigFile(file)
    const settings = yield* settingsFromConfig(config)
    const store = Context.get(yield* Layer.build(stateStoreLayer(settings.state)), StateStore)
    for (const tenant of tenants.slice(1)) yield* store.tenants.put(tenant.id, yield* Schema.decodeUnknownEffect(TenantConfig)(tenant.config))
    const run = yield* runTenants({ config, defaultSettings: settings, adminPassword: Redacted.make(adminPassword) }).pipe(
      Effect.provideService(StateStore, store)
    )
    const get = (path: string, authorization?: string) =>
      Effect.promise(() => fetch(`http://127.0.0.1:${port}${path}`, authorization === undefined ? {} : { headers: { authorization } }))
    return { port, dir, store, run, tenants, get }
  })
