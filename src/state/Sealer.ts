/**
 * Secrets at rest: AES-256-GCM with the state key (CONNECTOR_STATE_KEY, 32 bytes in base64). A sealed value names the
 * key that sealed it and is bound to its place (tenant, kind, name) through the additional authenticated data, so a
 * value copied to another tenant's row or another account does not open. Errors name the key id, never the value.
 */
import { Config, Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto"

/** Where a sealed value belongs: opening it anywhere else fails. */
export interface SealContext {
  readonly tenant: string
  readonly kind: "config" | "refresh-token" | "private-key" | "client-state"
  readonly name: string
}

export class SealError extends Schema.TaggedError<SealError>()("SealError", {
  /** NoKey: sealing without a key; UnknownKey: sealed with a key that is not configured; Rejected: tampered or moved. */
  reason: Schema.Literals(["InvalidKey", "NoKey", "UnknownKey", "Rejected", "Malformed"]),
  keyId: Schema.optionalKey(Schema.String),
  message: Schema.String
}) {}

interface Key {
  readonly id: string
  readonly bytes: Buffer
}

/** The keys: `current` seals (absent: nothing can be sealed), every key opens what it sealed. */
export interface StateKeys {
  readonly current: Redacted.Redacted<string> | undefined
  readonly previous: ReadonlyArray<Redacted.Redacted<string>>
}

const VERSION = "v1"
const SEALED = /^v1\.[0-9a-f]{8}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{22}$/
const BASE64 = /^[A-Za-z0-9+/]{43}=?$|^[A-Za-z0-9_-]{43}$/

const keyHelp = "32 random bytes in base64, e.g. the output of: openssl rand -base64 32"

/** A short id derived from the key (not the key's own hash), so operators see which key a value needs. */
const keyIdOf = (bytes: Buffer): string =>
  createHash("sha256").update("teams-presence-connector state key id\0").update(bytes).digest("hex").slice(0, 8)

const parseKey = (name: string, value: Redacted.Redacted<string>): Effect.Effect<Key, SealError> => {
  const text = Redacted.value(value).trim()
  const bytes = Buffer.from(text, text.includes("-") || text.includes("_") ? "base64url" : "base64")
  return BASE64.test(text) && bytes.length === 32
    ? Effect.succeed({ id: keyIdOf(bytes), bytes })
    : Effect.fail(new SealError({ reason: "InvalidKey", message: `${name} is not a valid state key: expected ${keyHelp}` }))
}

const aadOf = (context: SealContext): Buffer => Buffer.from(JSON.stringify([context.tenant, context.kind, context.name]), "utf8")

const where = (context: SealContext) => `the ${context.kind} ${context.name} of tenant ${context.tenant}`

const sealWith = (key: Key, value: Redacted.Redacted<string>, context: SealContext): string => {
  const iv = randomBytes(12)
  const cipher = createCipheriv("aes-256-gcm", key.bytes, iv)
  cipher.setAAD(aadOf(context))
  const ciphertext = Buffer.concat([cipher.update(Redacted.value(value), "utf8"), cipher.final()])
  return [VERSION, key.id, iv.toString("base64url"), ciphertext.toString("base64url"), cipher.getAuthTag().toString("base64url")]
    .join(".")
}

const openWith = (key: Key, sealed: string, context: SealContext): Redacted.Redacted<string> | undefined => {
  const [, , iv, ciphertext, tag] = sealed.split(".")
  try {
    const decipher = createDecipheriv("aes-256-gcm", key.bytes, Buffer.from(iv!, "base64url"))
    decipher.setAAD(aadOf(context))
    decipher.setAuthTag(Buffer.from(tag!, "base64url"))
    return Redacted.make(Buffer.concat([decipher.update(Buffer.from(ciphertext!, "base64url")), decipher.final()]).toString("utf8"))
  } catch {
    return undefined
  }
}

export class Sealer extends Context.Service<Sealer, {
  /** The id of the key that seals; undefined when no state key is set (the file store then keeps clear text). */
  readonly keyId: string | undefined
  /** Every key id that opens: the current one first, then the previous ones. */
  readonly keyIds: ReadonlyArray<string>
  seal(value: Redacted.Redacted<string>, context: SealContext): Effect.Effect<string, SealError>
  open(sealed: string, context: SealContext): Effect.Effect<Redacted.Redacted<string>, SealError>
  /** True for text in the sealed format (whatever key sealed it). */
  isSealed(text: string): boolean
  /** The key id a sealed text names; undefined for anything else. */
  sealedWith(text: string): string | undefined
}>()("teams-presence-connector/state/Sealer") {
  static readonly make = Effect.fn("Sealer.make")(function*(keys: StateKeys) {
    const current = keys.current === undefined ? undefined : yield* parseKey("CONNECTOR_STATE_KEY", keys.current)
    const previous = yield* Effect.forEach(keys.previous, (key, i) => parseKey(`CONNECTOR_STATE_KEY_PREVIOUS (key ${i + 1})`, key))
    const all = [...(current === undefined ? [] : [current]), ...previous.filter((k) => k.id !== current?.id)]
    const byId = new Map(all.map((k) => [k.id, k]))

    const isSealed = (text: string) => SEALED.test(text)
    const sealedWith = (text: string) => (isSealed(text) ? text.slice(3, 11) : undefined)

    const seal = Effect.fn("Sealer.seal")(function*(value: Redacted.Redacted<string>, context: SealContext) {
      if (current === undefined) {
        return yield* new SealError({ reason: "NoKey", message: `cannot seal ${where(context)}: CONNECTOR_STATE_KEY is not set (${keyHelp})` })
      }
      return sealWith(current, value, context)
    })

    const open = Effect.fn("Sealer.open")(function*(sealed: string, context: SealContext) {
      const keyId = sealedWith(sealed)
      if (keyId === undefined) {
        return yield* new SealError({ reason: "Malformed", message: `${where(context)} is not a sealed value (expected ${VERSION}.<key id>.…)` })
      }
      const key = byId.get(keyId)
      if (key === undefined) {
        const known = all.length === 0 ? "no state key is set" : `the configured keys are ${all.map((k) => k.id).join(", ")}`
        return yield* new SealError({
          reason: "UnknownKey",
          keyId,
          message: `${where(context)} was sealed with state key ${keyId}, but ${known}: ` +
            "set that key as CONNECTOR_STATE_KEY or in CONNECTOR_STATE_KEY_PREVIOUS"
        })
      }
      const opened = openWith(key, sealed, context)
      if (opened === undefined) {
        return yield* new SealError({
          reason: "Rejected",
          keyId,
          message: `${where(context)} does not open with state key ${keyId}: it was altered, or copied from another tenant or record`
        })
      }
      return opened
    })

    return Sealer.of({ keyId: current?.id, keyIds: all.map((k) => k.id), seal, open, isSealed, sealedWith })
  })

  /** A sealer with the given keys (tests, tools). */
  static readonly layer = (keys: StateKeys) => Layer.effect(Sealer, Sealer.make(keys))

  /** CONNECTOR_STATE_KEY (optional here; the PostgreSQL store requires it) and CONNECTOR_STATE_KEY_PREVIOUS (comma-separated). */
  static readonly keysFromConfig = Effect.gen(function*() {
    const current = yield* Config.option(Config.Redacted("CONNECTOR_STATE_KEY"))
    const previous = yield* Config.option(Config.Redacted("CONNECTOR_STATE_KEY_PREVIOUS"))
    return {
      current: Option.getOrUndefined(current),
      previous: Option.match(previous, { onNone: () => [], onSome: splitKeys })
    } satisfies StateKeys
  })

  /** A sealer with the keys of CONNECTOR_STATE_KEY and CONNECTOR_STATE_KEY_PREVIOUS. */
  static readonly layerConfig = Layer.effect(Sealer, Effect.flatMap(Sealer.keysFromConfig, Sealer.make))
}

/** The keys of a comma-separated list (CONNECTOR_STATE_KEY_PREVIOUS). */
export const splitKeys = (value: Redacted.Redacted<string>): ReadonlyArray<Redacted.Redacted<string>> =>
  Redacted.value(value).split(",").map((s) => s.trim()).filter((s) => s !== "").map((s) => Redacted.make(s))
