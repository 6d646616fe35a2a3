/**
 * The file backend of the state store: one JSON file per record in the data directory (FileLayout.ts), secrets
 * sealed when CONNECTOR_STATE_KEY is set and in clear otherwise, as today. Tenant changes made by another process
 * (the CLI) are seen through a watcher on `tenants/`. Desired commands and owners are kept in memory, the confirmed
 * commands also in a file per tenant (ConfirmedFile.ts).
 */
import { Effect, Option, PubSub, Schema } from "effect"
import { watch } from "node:fs"
import { makeMemoryDesired } from "../memory/MemoryDesired.ts"
import { keepConfirmedInFiles, type KeptDesired } from "./ConfirmedFile.ts"
import {
  type CertificateSet,
  defaultTenant,
  type PresenceSessionState,
  type RefreshToken,
  type SecretSlot,
  secretSlots,
  type SubscriptionState,
  type Tenant,
  type TenantConfig,
  TenantId
} from "../Records.ts"
import { codecs, decodeOpened, encodeSealed, type RecordCodec } from "../Sealing.ts"
import { Sealer } from "../Sealer.ts"
import type { StateStore } from "../StateStore.ts"
import { StateStoreError } from "../StateStoreError.ts"
import { tenantChanges, type Versions, type Wake } from "../TenantChanges.ts"
import * as Layout from "./FileLayout.ts"
import { ensureDir, listNames, readJson, removePath, writeJson } from "./JsonFiles.ts"
import { rekeyFiles } from "./FileRekey.ts"

/** tenant.json: the tenant's configuration (secrets sealed inside) with its version. */
const StoredTenant = Schema.Struct({ id: TenantId, version: Schema.Number, config: Schema.Unknown })

/** The secrets of tenant.json, for rekey: the configuration's, one level down. */
const tenantFileSlots = (stored: unknown): ReadonlyArray<SecretSlot> => {
  const config = stored !== null && typeof stored === "object" ? (stored as Record<string, unknown>)["config"] : undefined
  return secretSlots.tenant(config).map((slot) => ({ ...slot, path: ["config", ...slot.path] }))
}

const isTenantId = Schema.is(TenantId)

/** Treats a corrupt record as `fallback` (a tenant file being replaced by hand), other failures stay. */
const whenCorrupt = <B>(fallback: Effect.Effect<B>) => <A, R>(effect: Effect.Effect<A, StateStoreError, R>) =>
  Effect.catch(effect, (error) => (error.reason === "Corrupt" ? fallback : Effect.fail(error)))

export const makeFileStore = Effect.fnUntraced(function*(dataDir: string) {
  const sealer = yield* Sealer
  const memory = yield* makeMemoryDesired()
  const kept: KeptDesired = yield* keepConfirmedInFiles({
    desired: memory.desired,
    restore: memory.restore,
    fileOf: (tenant) => Layout.confirmedFile(dataDir, tenant)
  })
  const localWrites = yield* PubSub.unbounded<void>()

  const readRecord = <T>(file: string, tenant: TenantId, record: RecordCodec<T>) =>
    readJson(file, tenant).pipe(Effect.flatMap(Option.match({
      onNone: () => Effect.succeedNone,
      onSome: (stored) => decodeOpened(sealer, tenant, record, stored, file, "whenKeySet").pipe(Effect.map(Option.some))
    })))

  const writeRecord = <T>(file: string, tenant: TenantId, record: RecordCodec<T>, value: T) =>
    encodeSealed(sealer, tenant, record, value, "whenKeySet").pipe(Effect.flatMap((stored) => writeJson(file, stored, tenant)))

  // Tenants

  const ids = listNames(Layout.tenantsDir(dataDir), "*").pipe(Effect.map((names) => names.filter((name): name is TenantId => isTenantId(name))))

  const readStoredTenant = (id: TenantId) =>
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

  const getTenant = Effect.fn("StateStore.tenants.get")(function*(id: TenantId) {
    const found = yield* readStoredTenant(id)
    if (Option.isNone(found)) return Option.none<Tenant>()
    const config = yield* decodeOpened(sealer, id, codecs.tenantConfig, found.value.config, Layout.configFile(dataDir, id), "whenKeySet")
    return Option.some<Tenant>({ id, version: found.value.version, config })
  })

  const list = Effect.gen(function*() {
    const found = yield* Effect.forEach(yield* ids, getTenant)
    return found.flatMap((t) => Option.toArray(t))
  }).pipe(Effect.withSpan("StateStore.tenants.list"))

  const putTenant = Effect.fn("StateStore.tenants.put")(function*(id: TenantId, config: TenantConfig) {
    const previous = yield* readStoredTenant(id).pipe(whenCorrupt(Effect.succeedNone))
    const version = Option.match(previous, { onNone: () => 1, onSome: (p) => p.version + 1 })
    const stored = yield* encodeSealed(sealer, id, codecs.tenantConfig, config, "whenKeySet")
    yield* writeJson(Layout.configFile(dataDir, id), { id, version, config: stored }, id)
    yield* PubSub.publish(localWrites, undefined)
    return { id, version, config }
  })

  const removeTenant = Effect.fn("StateStore.tenants.remove")(function*(id: TenantId) {
    const existed = yield* removePath(Layout.configDir(dataDir, id), id)
    if (id === defaultTenant) {
      yield* removePath(Layout.accountsDir(dataDir, id), id)
      yield* removePath(Layout.subscriptionsFile(dataDir, id), id)
      yield* removePath(Layout.certificatesFile(dataDir, id), id)
      yield* removePath(Layout.presenceSessionsFile(dataDir, id), id)
    }
    yield* kept.forget(id)
    if (id === defaultTenant) yield* removePath(Layout.confirmedFile(dataDir, id), id)
    yield* memory.forget(id)
    yield* PubSub.publish(localWrites, undefined)
    return existed
  })

  const versions: Effect.Effect<Versions, StateStoreError> = Effect.gen(function*() {
    const entries = yield* Effect.forEach(yield* ids, (id) =>
      readStoredTenant(id).pipe(
        Effect.map(Option.map((t) => [id, t.version] as const)),
        // A file half-way through being replaced by hand is looked at again on the next wake-up.
        whenCorrupt(Effect.succeedNone)
      ))
    return new Map(entries.flatMap((e) => Option.toArray(e)))
  })

  /** File events under tenants/ (other processes) and this store's own writes. */
  const watchFiles = ({ wake, wakeUnsafe }: Wake) =>
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

  // Secrets and state per tenant

  const tokenGet = Effect.fn("StateStore.refreshTokens.get")((tenant: TenantId, account: string) =>
    readRecord(Layout.refreshTokenFile(dataDir, tenant, account), tenant, codecs.refreshToken(account)))

  const tokenPut = Effect.fn("StateStore.refreshTokens.put")((tenant: TenantId, account: string, token: RefreshToken) =>
    writeRecord(Layout.refreshTokenFile(dataDir, tenant, account), tenant, codecs.refreshToken(account), token))

  const tokenRemove = Effect.fn("StateStore.refreshTokens.remove")((tenant: TenantId, account: string) =>
    removePath(Layout.refreshTokenFile(dataDir, tenant, account), tenant).pipe(Effect.asVoid))

  const accounts = Effect.fn("StateStore.refreshTokens.accounts")((tenant: TenantId) =>
    listNames(Layout.accountsDir(dataDir, tenant), tenant).pipe(
      Effect.map((names) => names.flatMap((name) => Option.toArray(Option.fromNullishOr(Layout.accountOfFile(name)))).sort())
    ))

  const service: StateStore["Service"] = {
    backend: "files",
    tenants: {
      list,
      get: getTenant,
      put: putTenant,
      remove: removeTenant,
      changes: tenantChanges(versions, watchFiles)
    },
    refreshTokens: { get: tokenGet, put: tokenPut, remove: tokenRemove, accounts },
    subscriptions: {
      load: Effect.fn("StateStore.subscriptions.load")((tenant: TenantId) =>
        readRecord(Layout.subscriptionsFile(dataDir, tenant), tenant, codecs.subscriptions)),
      save: Effect.fn("StateStore.subscriptions.save")((tenant: TenantId, state: SubscriptionState) =>
        writeRecord(Layout.subscriptionsFile(dataDir, tenant), tenant, codecs.subscriptions, state))
    },
    certificates: {
      load: Effect.fn("StateStore.certificates.load")((tenant: TenantId) =>
        readRecord(Layout.certificatesFile(dataDir, tenant), tenant, codecs.certificates)),
      save: Effect.fn("StateStore.certificates.save")((tenant: TenantId, set: CertificateSet) =>
        writeRecord(Layout.certificatesFile(dataDir, tenant), tenant, codecs.certificates, set))
    },
    presenceSessions: {
      load: Effect.fn("StateStore.presenceSessions.load")((tenant: TenantId) =>
        readRecord(Layout.presenceSessionsFile(dataDir, tenant), tenant, codecs.presenceSessions)),
      save: Effect.fn("StateStore.presenceSessions.save")((tenant: TenantId, state: PresenceSessionState) =>
        writeRecord(Layout.presenceSessionsFile(dataDir, tenant), tenant, codecs.presenceSessions, state))
    },
    desired: kept.desired,
    owners: memory.owners,
    rekey: rekeyFiles({ dataDir, sealer, ids, accounts, tenantFileSlots })
  }
  return service
})
