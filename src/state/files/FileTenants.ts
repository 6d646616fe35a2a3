/**
 * The file backend's tenants: one tenant.json each (configuration with sealed secrets, and its version) under
 * `tenants/`. Changes made by another process (the CLI) are seen through a watcher on `tenants/`, this store's own
 * writes through a local wake-up.
 */
import { Effect, Option, PubSub, Schema } from "effect"
import { watch } from "node:fs"
import { defaultTenant, type Tenant, type TenantConfig, TenantId } from "../Records.ts"
import { codecs, decodeOpened, encodeSealed } from "../Sealing.ts"
import type { Sealer } from "../Sealer.ts"
import type { StateStoreShape } from "../StateStoreShape.ts"
import { StateStoreError } from "../StateStoreError.ts"
import { tenantChanges, type Versions, type Wake } from "../TenantChanges.ts"
import * as Layout from "./FileLayout.ts"
import { ensureDir, listNames, readJson, removePath, writeJson } from "./JsonFiles.ts"

/** tenant.json: the tenant's configuration (secrets sealed inside) with its version. */
const StoredTenant = Schema.Struct({ id: TenantId, version: Schema.Number, config: Schema.Unknown })

const isTenantId = Schema.is(TenantId)

/** Treats a corrupt record as `fallback` (a tenant file being replaced by hand), other failures stay. */
const whenCorrupt = <B>(fallback: Effect.Effect<B>) => <A, R>(effect: Effect.Effect<A, StateStoreError, R>) =>
  Effect.catch(effect, (error) => (error.reason === "Corrupt" ? fallback : Effect.fail(error)))

/** The ids of the tenants with a directory under `tenants/`. */
export const tenantIds = (dataDir: string) =>
  listNames(Layout.tenantsDir(dataDir), "*").pipe(Effect.map((names) => names.filter((name): name is TenantId => isTenantId(name))))

const readStoredTenant = (dataDir: string, id: TenantId) =>
  readJson(Layout.configFile(dataDir, id), id).pipe(Effect.flatMap(Option.match({
    onNone: () => Effect.succeedNone,
    onSome: (stored) =>
      Schema.decodeUnknownEffect(StoredTenant)(stored).pipe(
        Effect.map((parsed) => Option.some({ version: parsed.version, config: parsed.config })),
        Effect.mapError(() =>
          new StateStoreError({ reason: "Corrupt", tenant: id, message: `${Layout.configFile(dataDir, id)} is not a tenant file` })
        )
      )
  })))

const tenantVersions = (dataDir: string): Effect.Effect<Versions, StateStoreError> =>
  Effect.gen(function*() {
    const entries = yield* Effect.forEach(yield* tenantIds(dataDir), (id) =>
      readStoredTenant(dataDir, id).pipe(
        Effect.map(Option.map((t) => [id, t.version] as const)),
        // A file half-way through being replaced by hand is looked at again on the next wake-up.
        whenCorrupt(Effect.succeedNone)
      ))
    return new Map(entries.flatMap((e) => Option.toArray(e)))
  })

/** File events under tenants/ (other processes) and this store's own writes. */
const watchTenantFiles = (dataDir: string, localWrites: PubSub.PubSub<void>) => ({ wake, wakeUnsafe }: Wake) =>
  Effect.gen(function*() {
    yield* ensureDir(Layout.tenantsDir(dataDir), "*")
    yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          const watcher = watch(Layout.tenantsDir(dataDir), { recursive: true }, () => wakeUnsafe())
          // A watcher error (the directory removed or replaced) must not crash the process: the periodic read goes on.
          watcher.on("error", () => wakeUnsafe())
          return watcher
        },
        catch: (cause) =>
          new StateStoreError({ reason: "Unavailable", message: `cannot watch ${Layout.tenantsDir(dataDir)}: ${String(cause)}` })
      }),
      (watcher) => Effect.sync(() => watcher.close())
    )
    const subscription = yield* PubSub.subscribe(localWrites)
    yield* PubSub.take(subscription).pipe(Effect.andThen(wake), Effect.forever, Effect.forkScoped)
  })

/** The `tenants` part of the store; `forget` drops what the store keeps in memory for a removed tenant. */
export const makeFileTenants = Effect.fnUntraced(function*(
  dataDir: string,
  sealer: Sealer["Service"],
  forget: (id: TenantId) => Effect.Effect<void>
) {
  const localWrites = yield* PubSub.unbounded<void>()

  const get = Effect.fn("StateStore.tenants.get")(function*(id: TenantId) {
    const found = yield* readStoredTenant(dataDir, id)
    if (Option.isNone(found)) return Option.none<Tenant>()
    const config = yield* decodeOpened(sealer, id, codecs.tenantConfig, found.value.config, Layout.configFile(dataDir, id), "whenKeySet")
    return Option.some<Tenant>({ id, version: found.value.version, config })
  })

  const list = Effect.gen(function*() {
    const found = yield* Effect.forEach(yield* tenantIds(dataDir), get)
    return found.flatMap((t) => Option.toArray(t))
  }).pipe(Effect.withSpan("StateStore.tenants.list"))

  const put = Effect.fn("StateStore.tenants.put")(function*(id: TenantId, config: TenantConfig) {
    const previous = yield* readStoredTenant(dataDir, id).pipe(whenCorrupt(Effect.succeedNone))
    const version = Option.match(previous, { onNone: () => 1, onSome: (p) => p.version + 1 })
    const stored = yield* encodeSealed(sealer, id, codecs.tenantConfig, config, "whenKeySet")
    yield* writeJson(Layout.configFile(dataDir, id), { id, version, config: stored }, id)
    yield* PubSub.publish(localWrites, undefined)
    return { id, version, config }
  })

  const remove = Effect.fn("StateStore.tenants.remove")(function*(id: TenantId) {
    // Forgotten first too: a save of the tenant's files under way (the debounced PBX-confirmed file) is waited for and
    // nothing pending is saved, so no file appears in the tenant's directory while it is being removed (ENOTEMPTY);
    // and again after, for what was read back in meanwhile.
    yield* forget(id)
    const existed = yield* removePath(Layout.configDir(dataDir, id), id)
    if (id === defaultTenant) {
      yield* removePath(Layout.accountsDir(dataDir, id), id)
      yield* removePath(Layout.subscriptionsFile(dataDir, id), id)
      yield* removePath(Layout.certificatesFile(dataDir, id), id)
      yield* removePath(Layout.presenceSessionsFile(dataDir, id), id)
      yield* removePath(Layout.confirmedFile(dataDir, id), id)
    }
    yield* forget(id)
    yield* PubSub.publish(localWrites, undefined)
    return existed
  })

  const changes = tenantChanges(tenantVersions(dataDir), watchTenantFiles(dataDir, localWrites))
  return { list, get, put, remove, changes } satisfies StateStoreShape["tenants"]
})
