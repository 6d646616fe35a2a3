/**
 * The sealer: AES-256-GCM with the state key, bound to tenant, kind and name; previous keys open, only the current
 * one seals; every failure names the key id and never the value or the key.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Redacted } from "effect"
import { type SealContext, type SealError, Sealer } from "../../src/state/Sealer.ts"
import { keyIdOf, newKey } from "./fixtures.ts"

const context: SealContext = { tenant: "alpha", kind: "refresh-token", name: "tech1" }
const secret = Redacted.make("0.AXYZ-a-refresh-token-9f3c")

const sealer = (current: string | undefined, previous: ReadonlyArray<string> = []) =>
  Sealer.make({ current: current === undefined ? undefined : Redacted.make(current), previous: previous.map((k) => Redacted.make(k)) })

const fromEnv = (env: Record<string, string>) =>
  Effect.gen(function*() {
    return yield* Sealer
  }).pipe(Effect.provide(Sealer.layerConfig.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env))))))

const failure = (effect: Effect.Effect<unknown, SealError>) => Effect.flip(effect)

describe("Sealer", () => {
  it.effect("seals and opens; the sealed text names the key and never holds the value", () =>
    Effect.gen(function*() {
      const key = newKey()
      const s = yield* sealer(key)
      const sealed = yield* s.seal(secret, context)
      assert.match(sealed, new RegExp(`^v1\\.${yield* keyIdOf(key)}\\.[A-Za-z0-9_-]{16}\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]{22}$`))
      assert.notInclude(sealed, "refresh-token-9f3c")
      assert.isTrue(s.isSealed(sealed))
      assert.isFalse(s.isSealed(Redacted.value(secret)))
      assert.strictEqual(s.sealedWith(sealed), s.keyId)
      assert.strictEqual(Redacted.value(yield* s.open(sealed, context)), Redacted.value(secret))
      assert.notStrictEqual(yield* s.seal(secret, context), sealed, "a fresh IV each time")
      assert.strictEqual(Redacted.value(yield* s.open(yield* s.seal(Redacted.make(""), context), context)), "")
    }))

  it.effect("a value moved to another tenant, kind or name, or altered, does not open", () =>
    Effect.gen(function*() {
      const s = yield* sealer(newKey())
      const sealed = yield* s.seal(secret, context)
      for (const elsewhere of [
        { ...context, tenant: "beta" },
        { ...context, kind: "config" as const },
        { ...context, name: "tech2" }
      ]) {
        const error = yield* failure(s.open(sealed, elsewhere))
        assert.strictEqual(error.reason, "Rejected")
        assert.include(error.message, `does not open with state key ${s.keyId}`)
      }
      const parts = sealed.split(".")
      const flipped = parts[3]!.startsWith("A") ? `B${parts[3]!.slice(1)}` : `A${parts[3]!.slice(1)}`
      const altered = [...parts.slice(0, 3), flipped, parts[4]].join(".")
      assert.strictEqual((yield* failure(s.open(altered, context))).reason, "Rejected")
      assert.strictEqual((yield* failure(s.open("v1.zz", context))).reason, "Malformed")
    }))

  it.effect("previous keys open, only the current key seals; an unknown key is named, never the value", () =>
    Effect.gen(function*() {
      const oldKey = newKey()
      const current = newKey()
      const before = yield* (yield* sealer(oldKey)).seal(secret, context)
      const rotating = yield* sealer(current, [oldKey])
      assert.deepStrictEqual(rotating.keyIds, [yield* keyIdOf(current), yield* keyIdOf(oldKey)])
      assert.strictEqual(Redacted.value(yield* rotating.open(before, context)), Redacted.value(secret))
      assert.strictEqual(rotating.sealedWith(yield* rotating.seal(secret, context)), yield* keyIdOf(current))

      const error = yield* failure((yield* sealer(current)).open(before, context))
      assert.strictEqual(error.reason, "UnknownKey")
      assert.strictEqual(error.keyId, yield* keyIdOf(oldKey))
      assert.include(error.message, `sealed with state key ${yield* keyIdOf(oldKey)}, but the configured keys are ${yield* keyIdOf(current)}`)
      for (const text of [error.message, String(error)]) {
        assert.notInclude(text, "refresh-token-9f3c")
        assert.notInclude(text, oldKey)
        assert.notInclude(text, current)
      }
      const none = yield* failure((yield* sealer(undefined)).seal(secret, context))
      assert.strictEqual(none.reason, "NoKey")
      assert.include(none.message, "CONNECTOR_STATE_KEY is not set")
    }))

  it.effect("a key that is not 32 bytes of base64 is refused without showing it", () =>
    Effect.gen(function*() {
      const short = Buffer.alloc(16, 7).toString("base64")
      const error = yield* Effect.flip(sealer(short))
      assert.strictEqual(error.reason, "InvalidKey")
      assert.include(error.message, "CONNECTOR_STATE_KEY is not a valid state key: expected 32 random bytes in base64")
      assert.notInclude(error.message, short)
      const previous = yield* Effect.flip(sealer(newKey(), [newKey(), "not a key"]))
      assert.include(previous.message, "CONNECTOR_STATE_KEY_PREVIOUS (key 2)")
      assert.strictEqual((yield* sealer(Buffer.alloc(32, 1).toString("base64url"))).keyIds.length, 1, "base64url is accepted")
    }))

  it.effect("layerConfig reads CONNECTOR_STATE_KEY and the comma-separated CONNECTOR_STATE_KEY_PREVIOUS", () =>
    Effect.gen(function*() {
      const [current, old1, old2] = [newKey(), newKey(), newKey()]
      const env = { CONNECTOR_STATE_KEY: current, CONNECTOR_STATE_KEY_PREVIOUS: ` ${old1} ,${old2},` }
      const s = yield* fromEnv(env)
      assert.deepStrictEqual(s.keyIds, [yield* keyIdOf(current), yield* keyIdOf(old1), yield* keyIdOf(old2)])
      const unset = yield* fromEnv({})
      assert.isUndefined(unset.keyId)
    }))
})
