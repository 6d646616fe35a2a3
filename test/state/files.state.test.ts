/**
 * The state store on files: the shared contract (with a state key), plus what only the files have — an existing
 * single-tenant data directory read and written in exactly today's names and formats (checked against the code that
 * writes them today), other tenants under tenants/<id>/, modes 0600/0700, clear text only without a state key.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted } from "effect"
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"
import { prepareDataDir } from "../../src/config/DataDir.ts"
import { loadRefreshToken, saveRefreshToken } from "../../src/graph/auth/RefreshTokenStore.ts"
import { CertificateStore } from "../../src/graph/notifications/crypto/CertificateStore.ts"
import { loadState, saveState } from "../../src/graph/subscriptions/SubscriptionStore.ts"
import { defaultTenant, StateStore } from "../../src/state/StateStore.ts"
import { type Backend, recordsContract } from "./contract.ts"
import { desiredContract } from "./contract.desired.ts"
import { encoded, keyEnv, newKey, openStore, refreshToken, secretsInText, subscriptionState, tenant, tenantConfig, withEnv } from "./fixtures.ts"

/** Every file under `dir`, depth first. */
const filesUnder = (dir: string): ReadonlyArray<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(join(dir, entry.name)) : [join(dir, entry.name)]
  )

const newDataDir = () => join(mkdtempSync(join(tmpdir(), "tpc-state-")), "data")

const storeIn = (dataDir: string, env: Record<string, string>) => StateStore.layerFiles(dataDir).pipe(Layer.provide(withEnv(env)))

const files: Backend = {
  name: "files",
  storage: Effect.sync(() => {
    const dataDir = newDataDir()
    return {
      store: (env) => storeIn(dataDir, env),
      raw: Effect.promise(async () => {
        const texts = await Promise.all(filesUnder(dataDir).map((file) => readFile(file, "utf8")))
        return texts.join("\n")
      }),
      copyToken: (from, to, account) =>
        Effect.sync(() => {
          const path = (t: string) => join(dataDir, "tenants", t, "accounts", `${account}.refresh-token.json`)
          writeFileSync(path(to), readFileSync(path(from)))
        })
    }
  })
}

recordsContract(files)
desiredContract(files)

describe("state store: files only", () => {
  it.live("tenant default reads what today's code wrote, in today's files", () =>
    Effect.gen(function*() {
      const dataDir = newDataDir()
      const token = Redacted.make("0.AAA-refresh-token-written-today")
      yield* saveRefreshToken(dataDir, "tech1", "tech1@contoso.example", token)
      const today = { version: 1 as const, shards: [{ key: "s0", account: "tech1", userIds: ["u1"], subscription: { subscriptionId: "sub-1", clientState: "cs-1", expiresAt: 5 } }] }
      yield* saveState(dataDir, today)

      const store = yield* openStore(storeIn(dataDir, {}))
      const read = Option.getOrThrow(yield* store.refreshTokens.get(defaultTenant, "tech1"))
      assert.deepStrictEqual(encoded.token(read), { username: "tech1@contoso.example", refreshToken: Redacted.value(token) })
      const state = Option.getOrThrow(yield* store.subscriptions.load(defaultTenant))
      assert.strictEqual(Redacted.value(state.shards[0]!.subscription!.clientState), "cs-1")
      assert.deepStrictEqual(yield* store.refreshTokens.accounts(defaultTenant), ["tech1"])
      assert.deepStrictEqual(yield* store.tenants.list, [], "the default tenant's configuration is the configuration file, not a stored tenant")
    }))

  it.live("tenant default shares the rich-notification key file with today's certificate store, both ways", () =>
    Effect.gen(function*() {
      const dataDir = newDataDir()
      const today = yield* CertificateStore.make(dataDir)
      const created = yield* today.current
      const store = yield* openStore(storeIn(dataDir, {}))
      const set = Option.getOrThrow(yield* store.certificates.load(defaultTenant))
      assert.strictEqual(set.currentId, created.id)
      assert.strictEqual(set.certificates[0]!.thumbprint, created.thumbprint)
      assert.include(Redacted.value(set.certificates[0]!.privateKey), "BEGIN PRIVATE KEY")

      const rotated = yield* today.rotate
      const both = Option.getOrThrow(yield* store.certificates.load(defaultTenant))
      yield* store.certificates.save(defaultTenant, { currentId: created.id, certificates: both.certificates })
      const reread = yield* CertificateStore.make(dataDir)
      assert.strictEqual((yield* reread.current).id, created.id, "today's store reads the set the state store wrote")
      assert.deepStrictEqual((yield* reread.keys).map((k) => k.id).sort(), [created.id, rotated.id].sort())
    }))

  it.live("without a state key, tenant default writes exactly what today's code reads", () =>
    Effect.gen(function*() {
      const dataDir = newDataDir()
      const store = yield* openStore(storeIn(dataDir, {}))
      const token = refreshToken("tech1@contoso.example")
      yield* store.refreshTokens.put(defaultTenant, "tech1", token.token)
      const subscriptions = subscriptionState()
      yield* store.subscriptions.save(defaultTenant, subscriptions.state)

      const loaded = yield* loadRefreshToken(dataDir, "tech1", "tech1@contoso.example")
      assert.strictEqual(Redacted.value(Option.getOrThrow(loaded)), token.secrets.clear[0])
      const state = yield* loadState(dataDir)
      assert.strictEqual(state.shards[0]!.subscription!.clientState, subscriptions.secrets.clear[0])
      assert.deepStrictEqual(filesUnder(dataDir).map((f) => relative(dataDir, f)).sort(), ["accounts/tech1.refresh-token.json", "subscriptions.json"])
    }))

  it.live("with a state key the same files hold sealed secrets; other tenants live under tenants/<id>/, all private", () =>
    Effect.gen(function*() {
      const dataDir = newDataDir()
      const store = yield* openStore(storeIn(dataDir, keyEnv(newKey())))
      const mine = refreshToken("tech1@contoso.example")
      const theirs = refreshToken("tech1@fabrikam.example")
      yield* store.refreshTokens.put(defaultTenant, "tech1", mine.token)
      yield* store.refreshTokens.put(tenant("fabrikam"), "tech1", theirs.token)
      yield* store.tenants.put(tenant("fabrikam"), tenantConfig("f").config)
      assert.deepStrictEqual(filesUnder(dataDir).map((f) => relative(dataDir, f)).sort(), [
        "accounts/tech1.refresh-token.json",
        "tenants/fabrikam/accounts/tech1.refresh-token.json",
        "tenants/fabrikam/tenant.json"
      ])
      const stored = JSON.parse(readFileSync(join(dataDir, "accounts", "tech1.refresh-token.json"), "utf8"))
      assert.strictEqual(stored.username, "tech1@contoso.example")
      assert.match(stored.refreshToken, /^v1\.[0-9a-f]{8}\./)
      const found = secretsInText(filesUnder(dataDir).map((f) => readFileSync(f, "utf8")).join("\n"), [mine.secrets, theirs.secrets])
      assert.deepStrictEqual(found, { leaked: [], missing: [] })
      for (const file of filesUnder(dataDir)) assert.strictEqual(statSync(file).mode & 0o777, 0o600, file)
      assert.strictEqual(statSync(join(dataDir, "tenants", "fabrikam", "accounts")).mode & 0o777, 0o700)
      yield* prepareDataDir(dataDir)

      // Today's reader (an older version after a downgrade) gets sealed text, which the identity platform refuses:
      // a new sign-in, never another account's token.
      const legacy = Option.getOrThrow(yield* loadRefreshToken(dataDir, "tech1", "tech1@contoso.example"))
      assert.match(Redacted.value(legacy), /^v1\./)
      assert.isTrue(yield* store.tenants.remove(tenant("fabrikam")))
      assert.deepStrictEqual(filesUnder(dataDir).map((f) => relative(dataDir, f)), ["accounts/tech1.refresh-token.json"])
    }))

  it.live("state written in clear before a key was set opens with the key, and rekey seals it", () =>
    Effect.gen(function*() {
      const dataDir = newDataDir()
      const clear = yield* openStore(storeIn(dataDir, {}))
      const token = refreshToken("tech1@contoso.example")
      yield* clear.refreshTokens.put(defaultTenant, "tech1", token.token)
      const keyed = yield* openStore(storeIn(dataDir, keyEnv(newKey())))
      assert.deepStrictEqual(encoded.token(Option.getOrThrow(yield* keyed.refreshTokens.get(defaultTenant, "tech1"))), encoded.token(token.token))
      assert.strictEqual((yield* keyed.rekey).resealed, 1)
      assert.notInclude(readFileSync(join(dataDir, "accounts", "tech1.refresh-token.json"), "utf8"), token.secrets.clear[0]!)
      assert.deepStrictEqual(encoded.token(Option.getOrThrow(yield* keyed.refreshTokens.get(defaultTenant, "tech1"))), encoded.token(token.token))
      const failure = yield* Effect.flip(clear.refreshTokens.get(defaultTenant, "tech1"))
      assert.strictEqual(failure.reason, "Sealed")
      assert.include(failure.message, "no state key is set")
    }))
})
