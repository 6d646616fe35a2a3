/**
 * The file backend of the state store: one JSON file per record in the data directory (FileLayout.ts), secrets
 * sealed when CONNECTOR_STATE_KEY is set and in clear otherwise, as today. Tenants (and the watcher that sees another
 * process's changes) in FileTenants.ts. Desired commands and owners are kept in memory, the confirmed commands also in
 * a file per tenant (ConfirmedFile.ts).
 */
import { Effect, Option } from "effect"
import { makeMemoryDesired } from "../memory/MemoryDesired.ts"
import { makeMemoryDirectory } from "../memory/MemoryDirectory.ts"
import { keepConfirmedInFiles, type KeptDesired } from "./ConfirmedFile.ts"
import {
  type CertificateSet,
  type PresenceSessionState,
  type RefreshToken,
  type SecretSlot,
  secretSlots,
  type SubscriptionState,
  type TenantId
} from "../Records.ts"
import { codecs, decodeOpened, encodeSealed, type RecordCodec } from "../Sealing.ts"
import { Sealer } from "../Sealer.ts"
import type { StateStoreShape } from "../StateStoreShape.ts"
import * as Layout from "./FileLayout.ts"
import { rekeyFiles } from "./FileRekey.ts"
import { makeFileTenants, tenantIds } from "./FileTenants.ts"
import { listNames, readJson, removePath, writeJson } from "./JsonFiles.ts"

/** The secrets of tenant.json, for rekey: the configuration's, one level down. */
const tenantFileSlots = (stored: unknown): ReadonlyArray<SecretSlot> => {
  const config = stored !== null && typeof stored === "object" ? (stored as Record<string, unknown>)["config"] : undefined
  return secretSlots.tenant(config).map((slot) => ({ ...slot, path: ["config", ...slot.path] }))
}

const readRecord = <T>(sealer: Sealer["Service"], file: string, tenant: TenantId, record: RecordCodec<T>) =>
  readJson(file, tenant).pipe(Effect.flatMap(Option.match({
    onNone: () => Effect.succeedNone,
    onSome: (stored) => decodeOpened(sealer, tenant, record, stored, file, "whenKeySet").pipe(Effect.map(Option.some))
  })))

const writeRecord = <T>(sealer: Sealer["Service"], file: string, tenant: TenantId, record: RecordCodec<T>, value: T) =>
  encodeSealed(sealer, tenant, record, value, "whenKeySet").pipe(Effect.flatMap((stored) => writeJson(file, stored, tenant)))

const accountsOf = (dataDir: string) =>
  Effect.fn("StateStore.refreshTokens.accounts")((tenant: TenantId) =>
    listNames(Layout.accountsDir(dataDir, tenant), tenant).pipe(
      Effect.map((names) => names.flatMap((name) => Option.toArray(Option.fromNullishOr(Layout.accountOfFile(name)))).sort())
    ))

/** The refresh tokens, one file per delegated account. */
const fileRefreshTokens = (dataDir: string, sealer: Sealer["Service"]): StateStoreShape["refreshTokens"] => ({
  get: Effect.fn("StateStore.refreshTokens.get")((tenant: TenantId, account: string) =>
    readRecord(sealer, Layout.refreshTokenFile(dataDir, tenant, account), tenant, codecs.refreshToken(account))),
  put: Effect.fn("StateStore.refreshTokens.put")((tenant: TenantId, account: string, token: RefreshToken) =>
    writeRecord(sealer, Layout.refreshTokenFile(dataDir, tenant, account), tenant, codecs.refreshToken(account), token)),
  remove: Effect.fn("StateStore.refreshTokens.remove")((tenant: TenantId, account: string) =>
    removePath(Layout.refreshTokenFile(dataDir, tenant, account), tenant).pipe(Effect.asVoid)),
  accounts: accountsOf(dataDir)
})

/** The state records of one file each per tenant: subscriptions, certificates, presence sessions. */
const fileRecords = (dataDir: string, sealer: Sealer["Service"]) => ({
  subscriptions: {
    load: Effect.fn("StateStore.subscriptions.load")((tenant: TenantId) =>
      readRecord(sealer, Layout.subscriptionsFile(dataDir, tenant), tenant, codecs.subscriptions)),
    save: Effect.fn("StateStore.subscriptions.save")((tenant: TenantId, state: SubscriptionState) =>
      writeRecord(sealer, Layout.subscriptionsFile(dataDir, tenant), tenant, codecs.subscriptions, state))
  },
  certificates: {
    load: Effect.fn("StateStore.certificates.load")((tenant: TenantId) =>
      readRecord(sealer, Layout.certificatesFile(dataDir, tenant), tenant, codecs.certificates)),
    save: Effect.fn("StateStore.certificates.save")((tenant: TenantId, set: CertificateSet) =>
      writeRecord(sealer, Layout.certificatesFile(dataDir, tenant), tenant, codecs.certificates, set))
  },
  presenceSessions: {
    load: Effect.fn("StateStore.presenceSessions.load")((tenant: TenantId) =>
      readRecord(sealer, Layout.presenceSessionsFile(dataDir, tenant), tenant, codecs.presenceSessions)),
    save: Effect.fn("StateStore.presenceSessions.save")((tenant: TenantId, state: PresenceSessionState) =>
      writeRecord(sealer, Layout.presenceSessionsFile(dataDir, tenant), tenant, codecs.presenceSessions, state))
  }
}) satisfies Pick<StateStoreShape, "subscriptions" | "certificates" | "presenceSessions">

export const makeFileStore = Effect.fnUntraced(function*(dataDir: string) {
  const sealer = yield* Sealer
  const memory = yield* makeMemoryDesired()
  const kept: KeptDesired = yield* keepConfirmedInFiles({
    desired: memory.desired,
    restore: memory.restore,
    fileOf: (tenant) => Layout.confirmedFile(dataDir, tenant)
  })
  const directories = yield* makeMemoryDirectory()
  const forget = (tenant: TenantId) => Effect.andThen(kept.forget(tenant), Effect.andThen(memory.forget(tenant), directories.forget(tenant)))
  const service: StateStoreShape = {
    backend: "files",
    tenants: yield* makeFileTenants(dataDir, sealer, forget),
    refreshTokens: fileRefreshTokens(dataDir, sealer),
    ...fileRecords(dataDir, sealer),
    desired: kept.desired,
    directory: directories.directory,
    owners: memory.owners,
    rekey: rekeyFiles({ dataDir, sealer, ids: tenantIds(dataDir), accounts: accountsOf(dataDir), tenantFileSlots })
  }
  return service
})
