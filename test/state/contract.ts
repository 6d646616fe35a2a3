/**
 * The state store's contract, run against both backends (files.state.test.ts, postgres.state.test.ts): round trips
 * of every kind, secrets never in clear in what is stored, sealed values bound to their tenant, key rotation.
 * Desired commands, owners and change streams: contract.desired.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, type Layer, Option, Redacted, Schema, type Scope } from "effect"
import { type StateStore, type StateStoreError, SubscriptionState } from "../../src/state/StateStore.ts"
import {
  certificateSet,
  encoded,
  keyEnv,
  keyIdOf,
  newKey,
  openStore,
  refreshToken,
  secretsInText,
  subscriptionState,
  tenant,
  tenantConfig
} from "./fixtures.ts"

export interface Storage {
  /** A store on this storage with the given environment (state keys): a new process each time. */
  readonly store: (env: Record<string, string>) => Layer.Layer<StateStore, unknown>
  /** Everything stored, as text: the files' bytes, or every row of every table. */
  readonly raw: Effect.Effect<string>
  /** Overwrites tenant `to`'s stored refresh token of `account` with tenant `from`'s, bypassing the store. */
  readonly copyToken: (from: string, to: string, account: string) => Effect.Effect<void>
}

export interface Backend {
  readonly name: string
  /** Fresh, empty storage for one test. */
  readonly storage: Effect.Effect<Storage, never, Scope.Scope>
}

export const failureOf = <A, E>(exit: Exit.Exit<A, E>): StateStoreError => {
  assert.isTrue(Exit.isFailure(exit), "expected a failure")
  const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail")?.error : undefined
  assert.strictEqual((error as { _tag?: string } | undefined)?._tag, "StateStoreError")
  return error as StateStoreError
}

const encodedSubscriptions = Schema.encodeSync(SubscriptionState)

const a = tenant("alpha")
const b = tenant("beta")

/** One record of each secret-holding kind, stored: the configuration and token under `a`, the state records under `state`. */
const storeSecretRecords = (store: StateStore["Service"], state: typeof a) =>
  Effect.gen(function*() {
    const records = {
      config: tenantConfig("a"),
      token: refreshToken("tech1@contoso.example"),
      subscriptions: subscriptionState(),
      certificates: certificateSet()
    }
    yield* store.tenants.put(a, records.config.config)
    yield* store.refreshTokens.put(a, "tech1", records.token.token)
    yield* store.subscriptions.save(state, records.subscriptions.state)
    yield* store.certificates.save(state, records.certificates.set)
    return records
  })

export const recordsContract = (backend: Backend) =>
  describe(`state store contract: records (${backend.name})`, () => {
    it.live("tenants: put, get, list, versions, remove", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const store = yield* openStore(storage.store(keyEnv(newKey())))
        const first = tenantConfig("a")
        const second = tenantConfig("a2")
        assert.strictEqual((yield* store.tenants.put(a, first.config)).version, 1)
        assert.strictEqual((yield* store.tenants.put(b, tenantConfig("b").config)).version, 1)
        assert.strictEqual((yield* store.tenants.put(a, second.config)).version, 2)
        const got = Option.getOrThrow(yield* store.tenants.get(a))
        assert.strictEqual(got.version, 2)
        assert.deepStrictEqual(encoded.config(got.config), encoded.config(second.config))
        assert.strictEqual(Redacted.value(got.config.pbx.appPassword), second.secrets.clear[1])
        assert.deepStrictEqual((yield* store.tenants.list).map((t) => [t.id, t.version]), [[a, 2], [b, 1]])
        yield* store.refreshTokens.put(a, "tech1", refreshToken("tech1@contoso.example").token)
        yield* store.subscriptions.save(a, subscriptionState().state)
        yield* store.certificates.save(a, certificateSet().set)
        yield* store.presenceSessions.save(a, { version: 1, sessionId: "app-1", userIds: ["u1"] })
        yield* store.presenceSessions.save(b, { version: 1, sessionId: "app-1", userIds: ["u1"] })
        assert.isTrue(yield* store.tenants.remove(a))
        assert.isFalse(yield* store.tenants.remove(a))
        assert.isTrue(Option.isNone(yield* store.tenants.get(a)))
        // Removing a tenant removes its state, and only its own.
        assert.isTrue(Option.isNone(yield* store.refreshTokens.get(a, "tech1")))
        assert.isTrue(Option.isNone(yield* store.subscriptions.load(a)))
        assert.isTrue(Option.isNone(yield* store.certificates.load(a)))
        assert.isTrue(Option.isNone(yield* store.presenceSessions.load(a)))
        assert.isTrue(Option.isSome(yield* store.presenceSessions.load(b)))
        assert.strictEqual((yield* store.tenants.put(a, first.config)).version, 1)
      }))

    it.live("refresh tokens per tenant and account; subscription state; certificates; presence sessions", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const store = yield* openStore(storage.store(keyEnv(newKey())))
        const t1 = refreshToken("tech1@contoso.example")
        const t2 = refreshToken("tech2@contoso.example")
        const other = refreshToken("tech1@fabrikam.example")
        yield* store.refreshTokens.put(a, "tech1", t1.token)
        yield* store.refreshTokens.put(a, "tech 2/x", t2.token)
        yield* store.refreshTokens.put(b, "tech1", other.token)
        assert.deepStrictEqual(encoded.token(Option.getOrThrow(yield* store.refreshTokens.get(a, "tech1"))), encoded.token(t1.token))
        assert.deepStrictEqual(encoded.token(Option.getOrThrow(yield* store.refreshTokens.get(a, "tech 2/x"))), encoded.token(t2.token))
        assert.deepStrictEqual(encoded.token(Option.getOrThrow(yield* store.refreshTokens.get(b, "tech1"))), encoded.token(other.token))
        assert.deepStrictEqual(yield* store.refreshTokens.accounts(a), ["tech 2/x", "tech1"].sort())
        yield* store.refreshTokens.remove(a, "tech1")
        assert.isTrue(Option.isNone(yield* store.refreshTokens.get(a, "tech1")))
        assert.isTrue(Option.isNone(yield* store.refreshTokens.get(tenant("nobody"), "tech1")))

        const subscriptions = subscriptionState()
        assert.isTrue(Option.isNone(yield* store.subscriptions.load(a)))
        yield* store.subscriptions.save(a, subscriptions.state)
        const loaded = Option.getOrThrow(yield* store.subscriptions.load(a))
        assert.deepStrictEqual(encodedSubscriptions(loaded), encodedSubscriptions(subscriptions.state))

        const certificates = certificateSet()
        assert.isTrue(Option.isNone(yield* store.certificates.load(a)))
        yield* store.certificates.save(a, certificates.set)
        const set = Option.getOrThrow(yield* store.certificates.load(a))
        assert.strictEqual(set.currentId, "tpc-2")
        assert.deepStrictEqual(
          set.certificates.map((c) => ({ ...c, privateKey: Redacted.value(c.privateKey) })),
          certificates.set.certificates.map((c) => ({ ...c, privateKey: Redacted.value(c.privateKey) }))
        )
        yield* store.certificates.save(a, { currentId: "tpc-1", certificates: certificates.set.certificates.slice(1) })
        assert.deepStrictEqual(Option.getOrThrow(yield* store.certificates.load(a)).certificates.map((c) => c.id), ["tpc-1"])

        assert.isTrue(Option.isNone(yield* store.presenceSessions.load(a)))
        yield* store.presenceSessions.save(a, { version: 1, sessionId: "app-1", userIds: ["u1", "u2"] })
        yield* store.presenceSessions.save(b, { version: 1, sessionId: "app-2", userIds: [] })
        yield* store.presenceSessions.save(a, { version: 1, sessionId: "app-1", userIds: ["u2"] })
        assert.deepStrictEqual(Option.getOrThrow(yield* store.presenceSessions.load(a)), { version: 1, sessionId: "app-1", userIds: ["u2"] })
        assert.deepStrictEqual(Option.getOrThrow(yield* store.presenceSessions.load(b)).sessionId, "app-2")
      }))

    it.live("no secret is stored in clear: configuration, tokens, clientStates, private keys", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const store = yield* openStore(storage.store(keyEnv(newKey())))
        const { config, token, subscriptions, certificates } = yield* storeSecretRecords(store, a)
        const found = secretsInText(yield* storage.raw, [config.secrets, token.secrets, subscriptions.secrets, certificates.secrets])
        assert.deepStrictEqual(found.missing, [], "the stored text holds the records' visible fields")
        assert.deepStrictEqual(found.leaked, [], "no secret appears in clear")
      }))

    it.live("a sealed value copied to another tenant does not open there", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const store = yield* openStore(storage.store(keyEnv(newKey())))
        const mine = refreshToken("tech1@contoso.example")
        yield* store.refreshTokens.put(a, "tech1", mine.token)
        yield* store.refreshTokens.put(b, "tech1", refreshToken("tech1@fabrikam.example").token)
        yield* storage.copyToken(a, b, "tech1")
        const error = failureOf(yield* Effect.exit(store.refreshTokens.get(b, "tech1")))
        assert.strictEqual(error.reason, "Sealed")
        assert.match(error.message, /refresh-token tech1 of tenant beta does not open with state key [0-9a-f]{8}/)
        assert.notInclude(error.message, mine.secrets.clear[0]!)
        assert.isTrue(Option.isSome(yield* store.refreshTokens.get(a, "tech1")), "the original still opens")
      }))

    it.live("key rotation: the old key as previous, rekey, then the old key dropped", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const oldKey = newKey()
        const newer = newKey()
        const before = yield* openStore(storage.store(keyEnv(oldKey)))
        const { config, token, subscriptions } = yield* storeSecretRecords(before, b)
        const oldId = yield* keyIdOf(oldKey)

        // Only the new key: the values name the old key, which is not configured.
        const newOnly = yield* openStore(storage.store(keyEnv(newer)))
        const missing = failureOf(yield* Effect.exit(newOnly.refreshTokens.get(a, "tech1")))
        assert.strictEqual(missing.reason, "Sealed")
        assert.include(missing.message, `sealed with state key ${oldId}`)
        assert.include(missing.message, "CONNECTOR_STATE_KEY_PREVIOUS")

        const rotating = yield* openStore(storage.store(keyEnv(newer, [oldKey])))
        assert.deepStrictEqual(encoded.token(Option.getOrThrow(yield* rotating.refreshTokens.get(a, "tech1"))), encoded.token(token.token))
        const report = yield* rotating.rekey
        assert.strictEqual(report.resealed, 4 + 1 + 2 + 2, "4 configuration secrets, 1 token, 2 clientStates, 2 private keys")
        assert.strictEqual((yield* rotating.rekey).resealed, 0, "a second rekey finds nothing to do")
        const raw = yield* storage.raw
        assert.notInclude(raw, `v1.${oldId}.`)
        assert.include(raw, `v1.${yield* keyIdOf(newer)}.`)

        const after = yield* openStore(storage.store(keyEnv(newer)))
        assert.deepStrictEqual(encoded.config(Option.getOrThrow(yield* after.tenants.get(a)).config), encoded.config(config.config))
        assert.deepStrictEqual(encoded.token(Option.getOrThrow(yield* after.refreshTokens.get(a, "tech1"))), encoded.token(token.token))
        assert.deepStrictEqual(encodedSubscriptions(Option.getOrThrow(yield* after.subscriptions.load(b))), encodedSubscriptions(subscriptions.state))
        assert.strictEqual(Option.getOrThrow(yield* after.certificates.load(b)).certificates.length, 2)
        assert.strictEqual(Option.getOrThrow(yield* after.tenants.get(a)).version, 1, "rekey does not change versions")
      }))
  })
