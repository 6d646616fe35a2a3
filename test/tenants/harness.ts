/**
 * `run`'s tenants in one process for the operators' tests (test/tenants/operators.test.ts): tenant `default` from a
 * configuration file and stored tenants, each with its own simulated Graph tenant and PBX system, all behind the one
 * public port, over real sockets. The tenants and their simulators come from tenantsHarness.ts.
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { Context, Effect, Layer, Redacted, Schema } from "effect"
import * as YAML from "yaml"
import { loadConfigFile } from "../../src/config/ConfigFile.ts"
import { settingsFromConfig } from "../../src/config/Settings.ts"
import { stateStoreLayer } from "../../src/state/StateSettings.ts"
import { StateStore, TenantConfig } from "../../src/state/StateStore.ts"
import { runTenants } from "../../src/tenants/TenantsRun.ts"
import { makeTempDir } from "../support/tempDir.ts"
import { basicAuth, freePort } from "../support/waiting.ts"
import { type Sim, simulatedTenant as simulated } from "./tenantsHarness.ts"

export { activityOf, type Pbx as SimPbx, pbxFor, peopleOf, subscriptionsOf, users } from "./tenantsHarness.ts"
export const adminPassword = "operators-admin-password"
export const admin = basicAuth(adminPassword)

/** A simulated Graph tenant and the tenant configuration (as a tenant file holds it) that reaches it; `extra` adds keys. */
export const simulatedTenant = (id: string, frontPort: number, extra: Record<string, unknown> = {}) => simulated(id, frontPort, { extra })

export type SimTenant = Sim

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
