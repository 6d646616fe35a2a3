/**
 * `state rekey` for the files: every secret of every tenant sealed again with the current state key (those sealed
 * with a previous key, and those still in clear from before a key was set). Each file is rewritten atomically and
 * only when something in it changed.
 */
import { Effect, Option } from "effect"
import { defaultTenant, type SecretSlot, secretSlots, type TenantId } from "../Records.ts"
import { reseal } from "../Sealing.ts"
import type { Sealer } from "../Sealer.ts"
import type { RekeyReport } from "../StateStoreShape.ts"
import type { StateStoreError } from "../StateStoreError.ts"
import * as Layout from "./FileLayout.ts"
import { readJson, writeJson } from "./JsonFiles.ts"

export interface FileRekeyInput {
  readonly dataDir: string
  readonly sealer: Sealer["Service"]
  readonly ids: Effect.Effect<ReadonlyArray<TenantId>, StateStoreError>
  readonly accounts: (tenant: TenantId) => Effect.Effect<ReadonlyArray<string>, StateStoreError>
  readonly tenantFileSlots: (stored: unknown) => ReadonlyArray<SecretSlot>
}

export const rekeyFiles = (input: FileRekeyInput): Effect.Effect<RekeyReport, StateStoreError> =>
  Effect.gen(function*() {
    const { dataDir, sealer } = input
    let records = 0
    let resealed = 0
    const rekeyFile = Effect.fnUntraced(function*(file: string, tenant: TenantId, slots: (stored: unknown) => ReadonlyArray<SecretSlot>) {
      const stored = yield* readJson(file, tenant)
      if (Option.isNone(stored)) return
      records += 1
      const next = yield* reseal(sealer, tenant, slots, stored.value)
      if (next.changed === 0) return
      yield* writeJson(file, next.stored, tenant)
      resealed += next.changed
    })
    const listed = yield* input.ids
    const tenants = [defaultTenant, ...listed.filter((id) => id !== defaultTenant)]
    for (const tenant of tenants) {
      yield* rekeyFile(Layout.configFile(dataDir, tenant), tenant, input.tenantFileSlots)
      for (const account of yield* input.accounts(tenant)) {
        yield* rekeyFile(Layout.refreshTokenFile(dataDir, tenant, account), tenant, secretSlots.refreshToken(account))
      }
      yield* rekeyFile(Layout.subscriptionsFile(dataDir, tenant), tenant, secretSlots.subscriptions)
      yield* rekeyFile(Layout.certificatesFile(dataDir, tenant), tenant, secretSlots.certificates)
    }
    yield* Effect.logInfo(`state rekey: ${resealed} secrets in ${records} files sealed with state key ${sealer.keyId}`)
    return { records, resealed }
  }).pipe(Effect.withSpan("StateStore.rekey"))
