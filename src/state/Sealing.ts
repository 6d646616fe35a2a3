/**
 * Turns a record into its stored JSON with every secret slot sealed, and back. Both backends store through these, so
 * a secret reaches a file or a table only as sealed text (or, in the file store without a state key, in clear as
 * today). Decoding checks the stored shape before anything is opened, so an error can quote sealed text at most.
 */
import { Effect, Redacted, Schema } from "effect"
import { CertificateSet, PresenceSessionState, RefreshToken, secretSlots, type SecretSlot, SubscriptionState, TenantConfig } from "./Records.ts"
import type { Sealer } from "./Sealer.ts"
import { describeCause, StateStoreError } from "./StateStoreError.ts"

export interface RecordCodec<T> {
  readonly schema: Schema.Codec<T, unknown>
  readonly slots: (stored: unknown) => ReadonlyArray<SecretSlot>
}

export const codec = <S extends Schema.Top & { readonly DecodingServices: never; readonly EncodingServices: never }>(
  schema: S,
  slots: (stored: unknown) => ReadonlyArray<SecretSlot>
): RecordCodec<S["Type"]> => ({ schema: schema as unknown as Schema.Codec<S["Type"], unknown>, slots })

/** Whether secrets must be sealed (the database) or may stay clear when no state key is set (the files). */
export type SealPolicy = "always" | "whenKeySet"

const getAt = (root: unknown, path: ReadonlyArray<string | number>): unknown =>
  path.reduce<unknown>((node, key) => (node !== null && typeof node === "object" ? (node as Record<string, unknown>)[key] : undefined), root)

const setAt = (root: unknown, path: ReadonlyArray<string | number>, value: string): void => {
  const parent = getAt(root, path.slice(0, -1)) as Record<string | number, unknown>
  parent[path[path.length - 1]!] = value
}

/** Rewrites each secret slot holding a string; returns a copy and how many slots changed. */
const rewriteSlots = Effect.fnUntraced(function*<E>(
  stored: unknown,
  slots: ReadonlyArray<SecretSlot>,
  rewrite: (value: string, slot: SecretSlot) => Effect.Effect<string, E>
) {
  const copy = structuredClone(stored)
  let changed = 0
  for (const slot of slots) {
    const value = getAt(copy, slot.path)
    if (typeof value !== "string") continue
    const next = yield* rewrite(value, slot)
    if (next !== value) {
      setAt(copy, slot.path, next)
      changed += 1
    }
  }
  return { stored: copy, changed }
})

const sealError = (tenant: string) => (error: { readonly message: string }) =>
  new StateStoreError({ reason: "Sealed", tenant, message: error.message })

/** The stored JSON of `value`, its secrets sealed (or clear when the policy allows it and no key is set). */
export const encodeSealed = Effect.fnUntraced(function*<T>(
  sealer: Sealer["Service"],
  tenant: string,
  record: RecordCodec<T>,
  value: T,
  policy: SealPolicy
) {
  const encoded = yield* Schema.encodeUnknownEffect(record.schema)(value).pipe(
    Effect.mapError((error) => new StateStoreError({ reason: "Invalid", tenant, message: `not a valid record: ${describeCause(error)}` }))
  )
  if (policy === "whenKeySet" && sealer.keyId === undefined) return encoded
  const sealed = yield* rewriteSlots(encoded, record.slots(encoded), (clear, slot) =>
    sealer.seal(Redacted.make(clear), { tenant, kind: slot.kind, name: slot.name }).pipe(Effect.mapError(sealError(tenant))))
  return sealed.stored
})

/**
 * The record in `stored`: the shape is checked first (sealed text only), then each secret is opened and the result
 * decoded. `where` names the file or table for messages.
 */
export const decodeOpened = Effect.fnUntraced(function*<T>(
  sealer: Sealer["Service"],
  tenant: string,
  record: RecordCodec<T>,
  stored: unknown,
  where: string,
  policy: SealPolicy
) {
  const corrupt = (detail: string) => new StateStoreError({ reason: "Corrupt", tenant, message: `${where} is not valid: ${detail}` })
  yield* Schema.decodeUnknownEffect(record.schema)(stored).pipe(Effect.mapError((error) => corrupt(describeCause(error))))
  const opened = yield* rewriteSlots(stored, record.slots(stored), (value, slot) => {
    if (sealer.isSealed(value)) {
      return sealer.open(value, { tenant, kind: slot.kind, name: slot.name }).pipe(
        Effect.map(Redacted.value),
        Effect.mapError(sealError(tenant))
      )
    }
    return policy === "always"
      ? Effect.fail(corrupt(`${slot.kind} ${slot.name} is not sealed (a secret in clear where only sealed values belong)`))
      : Effect.succeed(value)
  })
  return yield* Schema.decodeUnknownEffect(record.schema)(opened.stored).pipe(
    Effect.mapError(() => corrupt("a secret does not have the expected form once opened"))
  )
})

/**
 * The stored JSON with every secret sealed by the current key: values sealed with a previous key and (in the files)
 * values in clear are resealed; the rest is left byte for byte. Used by `state rekey`.
 */
export const reseal = Effect.fnUntraced(function*(
  sealer: Sealer["Service"],
  tenant: string,
  slots: (stored: unknown) => ReadonlyArray<SecretSlot>,
  stored: unknown
) {
  const current = sealer.keyId
  if (current === undefined) {
    return yield* new StateStoreError({ reason: "NotConfigured", tenant, message: "rekey needs CONNECTOR_STATE_KEY: the key to seal with" })
  }
  return yield* rewriteSlots(stored, slots(stored), (value, slot) => {
    const context = { tenant, kind: slot.kind, name: slot.name }
    const keyId = sealer.sealedWith(value)
    if (keyId === current) return Effect.succeed(value)
    const clear = keyId === undefined ? Effect.succeed(Redacted.make(value)) : sealer.open(value, context)
    return clear.pipe(Effect.flatMap((opened) => sealer.seal(opened, context)), Effect.mapError(sealError(tenant)))
  })
})

/** A sealed single value (a table column), or its opening. */
export const sealValue = (sealer: Sealer["Service"], tenant: string, slot: SecretSlot, value: Redacted.Redacted<string>) =>
  sealer.seal(value, { tenant, kind: slot.kind, name: slot.name }).pipe(Effect.mapError(sealError(tenant)))

export const openValue = (sealer: Sealer["Service"], tenant: string, slot: SecretSlot, sealed: string) =>
  sealer.open(sealed, { tenant, kind: slot.kind, name: slot.name }).pipe(Effect.mapError(sealError(tenant)))

/** The records and where their secrets are. */
export const codecs = {
  tenantConfig: codec(TenantConfig, secretSlots.tenant),
  refreshToken: (account: string) => codec(RefreshToken, secretSlots.refreshToken(account)),
  subscriptions: codec(SubscriptionState, secretSlots.subscriptions),
  certificates: codec(CertificateSet, secretSlots.certificates),
  presenceSessions: codec(PresenceSessionState, () => [])
}
