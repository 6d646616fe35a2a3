/**
 * The state store for tests of the parts that keep state: tenant `default`'s state in the files of a data directory
 * (no state key: clear text, as an installation without one), the real file backend the connector uses.
 */
import type { Layer } from "effect"
import { defaultTenantStateLayer } from "../../src/state/StateSettings.ts"
import type { StateStore } from "../../src/state/StateStore.ts"
import type { StateStoreError } from "../../src/state/StateStoreError.ts"
import type { TenantState } from "../../src/state/TenantState.ts"

export const noStateKeys = { current: undefined, previous: [] }

/** Tenant `default`'s state in the files under `dataDir`. */
export const fileState = (dataDir: string): Layer.Layer<TenantState | StateStore, StateStoreError> =>
  defaultTenantStateLayer({ dataDir, keys: noStateKeys })
