/**
 * Tenants in one process over real sockets, for the tenants tests: per tenant a simulated Graph tenant (its own
 * simulator) and PBX system (its own App password); tenant `default` from a configuration file, the others stored;
 * `run`'s tenants (src/tenants/TenantsRun.ts) behind one public port.
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { Clock, Context, Effect, Layer, Redacted, Schema } from "effect"
import * as YAML from "yaml"
import { loadConfigFile } from "../../src/config/ConfigFile.ts"
import { settingsFromConfig } from "../../src/config/Settings.ts"
import { connectorSnippet, startGraphSimulator } from "../../src/simulators/graph/Standalone.ts"
import { PbxSimulator } from "../../src/simulators/pbx/PbxSimulator.ts"
import { pbxSystemOptions } from "../../src/simulators/pbx/Standalone.ts"
import { loadPopulation } from "../../src/simulators/UsersFile.ts"
import { stateStoreLayer } from "../../src/state/StateSettings.ts"
import { StateStore, TenantConfig, TenantId } from "../../src/state/StateStore.ts"
import { runTenants } from "../../src/tenants/TenantsRun.ts"
import { makeTempDir } from "../support/tempDir.ts"
import { basicAuth, freePort, until } from "../support/waiting.ts"

export const users = 3
export const adminPassword = "many-tenants-admin-password"

export interface TenantOptions {
  /** The tenant's time, shared by its Graph simulator and its connector (test/support/warpClock.ts). */
  readonly clock?: Clock.Clock | undefined
  /** More of the tenant's configuration (e.g. timers). */
  readonly extra?: Record<string, unknown> | undefined
}

export const simulatedTenant = (id: string, frontPort: number, options: TenantOptions = {}) =>
  Effect.gen(function*() {
    const population = yield* loadPopulation({ users })
    const started = startGraphSimulator({ port: 0, host: "127.0.0.1", users })
    const graph = yield* (options.clock === undefined ? started : Effect.provideService(started, Clock.Clock, options.clock))
    const appPassword = `pbx-password-of-${id}`
    const config: Record<string, unknown> = {
      ...(YAML.parse(connectorSnippet(graph.url, population)) as Record<string, unknown>),
      // The process's address only: the connector puts the tenant's /t/<id> in the URLs itself.
      notifications: { mode: "push", publicBaseUrl: `http://127.0.0.1:${frontPort}` },
      pbx: { masterPbx: population.pbxs.find((p) => p.master)!.name, appPassword },
      ...options.extra
    }
    const prefix = id === "default" ? "" : `/t/${id}`
    return { id: TenantId.make(id), population, graph, config, appPassword, prefix, clock: options.clock }
  })

export type Sim = Effect.Success<ReturnType<typeof simulatedTenant>>

export const tenantIds = (count: number) => ["default", ...Array.from({ length: count - 1 }, (_, i) => `t${i + 1}`)]

/**
 * `run` on `port` for the tenants (the first is `default`), the others stored first; the store is returned too.
 * `seenBy`: the store as `run` sees it (a test holding one of its reads); the one returned is the store itself.
 */
export const runAll = Effect.fnUntraced(function*(
  port: number,
  tenants: ReadonlyArray<Sim>,
  seenBy: (store: StateStore["Service"]) => StateStore["Service"] = (store) => store
) {
  const dir = yield* makeTempDir("tpc-tenants-run-")
  const file = join(dir, "connector.yaml")
  writeFileSync(file, YAML.stringify({
    ...tenants[0]!.config,
    http: { host: "127.0.0.1", port },
    dataDir: join(dir, "data"),
    admin: { password: adminPassword }
  }))
  const config = yield* loadConfigFile(file)
  const settings = yield* settingsFromConfig(config)
  const store = Context.get(yield* Layer.build(stateStoreLayer(settings.state)), StateStore)
  for (const tenant of tenants.slice(1)) {
    yield* store.tenants.put(tenant.id, yield* Schema.decodeUnknownEffect(TenantConfig)(tenant.config))
  }
  const clocks = new Map(tenants.flatMap((t) => (t.clock === undefined ? [] : [[t.id, t.clock] as const])))
  const run = yield* runTenants({
    config,
    defaultSettings: settings,
    adminPassword: Redacted.make(adminPassword),
    clockOf: (tenant) => clocks.get(tenant)
  }).pipe(Effect.provideService(StateStore, seenBy(store)))
  return { run, store }
})

export const pbxFor = (tenant: Sim, frontPort: number, path = tenant.prefix) =>
  PbxSimulator.make(pbxSystemOptions(tenant.population, {
    connectUrl: `ws://127.0.0.1:${frontPort}${path}/pbx`,
    password: Redacted.make(tenant.appPassword),
    reconnectDelayMs: 200
  }))

export type Pbx = Effect.Success<ReturnType<typeof pbxFor>>

export const activityOf = (pbx: Pbx, guid: string) =>
  Effect.map(pbx.presence(guid), (entries) => entries.find((e) => e.contact === "teams:")?.activity)

/** The PBX users of a tenant matched to its Teams people: the guid each Teams person's presence is written to. */
export const peopleOf = Effect.fnUntraced(function*(tenant: Sim, pbx: Pbx) {
  const pbxUsers = yield* until(`the PBX users of ${tenant.id}`, Effect.map(pbx.users, (list) => (list.length > 0 ? list : undefined)), 30_000)
  return tenant.population.people.flatMap((person) => {
    const user = pbxUsers.find((u) => (u.emails ?? []).includes(person.email))
    return person.teams && user !== undefined ? [{ graphId: person.graphId, guid: user.guid }] : []
  })
})

/** The tenant's PBX connected, its users there, and the people matched to them. */
export const served = (tenant: Sim, frontPort: number) =>
  Effect.gen(function*() {
    const pbx = yield* pbxFor(tenant, frontPort)
    return { tenant, pbx, people: yield* peopleOf(tenant, pbx) }
  })

export type Served = Effect.Success<ReturnType<typeof served>>

const SimSubscriptions = Schema.Struct({
  subscriptions: Schema.Array(Schema.Struct({
    id: Schema.String,
    kind: Schema.String,
    notificationUrl: Schema.String,
    clientState: Schema.NullOr(Schema.String)
  }))
})

export const subscriptionsOf = (tenant: Sim) =>
  Effect.promise(() => fetch(`${tenant.graph.url}/_sim/subscriptions`).then((r) => r.json())).pipe(
    Effect.flatMap(Schema.decodeUnknownEffect(SimSubscriptions)),
    Effect.map((body) => body.subscriptions),
    Effect.orDie
  )

const Lights = Schema.Struct({
  lights: Schema.Record(Schema.String, Schema.Struct({ state: Schema.String, reason: Schema.String }))
})

const statusOf = (port: number, prefix: string) =>
  Effect.promise(() =>
    fetch(`http://127.0.0.1:${port}${prefix}/api/status`, {
      headers: { authorization: basicAuth(adminPassword) }
    })
  )

const lightsIn = (answer: Response) =>
  Effect.promise(() => answer.json()).pipe(Effect.flatMap(Schema.decodeUnknownEffect(Lights)), Effect.map((body) => body.lights), Effect.orDie)

/** A tenant's lights, from its status page's API through the public port (the admin password); any other answer fails. */
export const lightsOf = (port: number, prefix: string) => Effect.flatMap(statusOf(port, prefix), lightsIn)

/**
 * For waits: a tenant's lights, or undefined while the process does not serve it yet — a tenant still starting is
 * answered 503 ("has no owner at the moment", RunnerFront.ts) until its server is up.
 */
export const lightsOnceServed = (port: number, prefix: string) =>
  Effect.flatMap(statusOf(port, prefix), (answer) => (answer.status === 503 ? Effect.succeed(undefined) : lightsIn(answer)))

/** Sets one presence for each of the tenant's people and waits until all of them are at its PBX. */
export const deliver = (s: Served, state: { readonly availability: string; readonly activity: string; readonly pbx: string }, timeoutMs = 30_000) =>
  Effect.gen(function*() {
    yield* Effect.forEach(s.people, (p) => s.tenant.graph.setPresence(p.graphId, state), { discard: true })
    yield* until(`${s.tenant.id}'s presences (${state.pbx}) in its PBX`, Effect.gen(function*() {
      for (const p of s.people) if ((yield* activityOf(s.pbx, p.guid)) !== state.pbx) return undefined
      return true
    }), timeoutMs)
  })

export { freePort, until }
