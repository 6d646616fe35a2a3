/**
 * The state store on files: the shared contract (with a state key), plus what only the files have — an existing
 * single-tenant data directory read and written in exactly the names and formats of version 0.1.0 (checked against that
 * version's file code, test/support/legacyDataDir.ts), other tenants under tenants/<id>/, modes 0600/0700, clear text
 * only without a state key.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted } from "effect"
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { join, relative } from "node:path"
import { prepareDataDir } from "../../src/config/DataDir.ts"
import { CertificateStore } from "../../src/graph/notifications/crypto/CertificateStore.ts"
import { defaultTenant, StateStore } from "../../src/state/StateStore.ts"
import { TenantState } from "../../src/state/TenantState.ts"
import { loadRefreshToken, loadState, readKeyFile, saveRefreshToken, saveState, writeKeyFile } from "../support/legacyDataDir.ts"
import { tempDirSync } from "../support/tempDir.ts"
import { type Backend, recordsContract } from "./contract.ts"
import { desiredContract } from "./contract.desired.ts"
import { encoded, keyEnv, newKey, openStore, refreshToken, secretsInText, subscriptionState, tenant, tenantConfig, withEnv } from "./fixtures.ts"

/** Every file under `dir`, depth first. */
const filesUnder = (dir: string): ReadonlyArray<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(join(dir, entry.name)) : [join(dir, entry.name)]
  )

const newDataDir = () => join(tempDirSync("tpc-state-"), "data")

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
  it.live("tenant default reads what version 0.1.0 wrote, in its files", () =>
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

  it.live("tenant default's presence sessions stay in pbx-to-teams-sessions.json, in the format written before the store", () =>
    Effect.gen(function*() {
      const dataDir = newDataDir()
      yield* prepareDataDir(dataDir)
      const file = join(dataDir, "pbx-to-teams-sessions.json")
      writeFileSync(file, JSON.stringify({ version: 1, sessionId: "app-1", userIds: ["u1", "u2"] }), { mode: 0o600 })
      const store = yield* openStore(storeIn(dataDir, {}))
      assert.deepStrictEqual(Option.getOrThrow(yield* store.presenceSessions.load(defaultTenant)).userIds, ["u1", "u2"])
      yield* store.presenceSessions.save(defaultTenant, { version: 1, sessionId: "app-1", userIds: ["u3"] })
      assert.deepStrictEqual(JSON.parse(readFileSync(file, "utf8")), { version: 1, sessionId: "app-1", userIds: ["u3"] })
      assert.strictEqual(statSync(file).mode & 0o777, 0o600)
    }))

  it.live("tenant default's rich-notification key file is the one version 0.1.0 reads and writes, both ways", () =>
    Effect.gen(function*() {
      const dataDir = newDataDir()
      const keyStore = CertificateStore.make().pipe(Effect.provide(TenantState.layer(defaultTenant).pipe(Layer.provide(storeIn(dataDir, {})))))
      const keys = yield* keyStore
      const created = yield* keys.current
      const legacy = Option.getOrThrow(yield* readKeyFile(dataDir))
      assert.strictEqual(legacy.currentId, created.id)
      assert.strictEqual(legacy.certificates[0]!.thumbprint, created.thumbprint)
      assert.include(legacy.certificates[0]!.privateKey, "BEGIN PRIVATE KEY")

      const rotated = yield* keys.rotate
      const both = Option.getOrThrow(yield* readKeyFile(dataDir))
      assert.deepStrictEqual(both.certificates.map((c) => c.id), [rotated.id, created.id])
      // What 0.1.0 writes (the earlier certificate current again) is what the key store reads.
      yield* writeKeyFile(dataDir, { currentId: created.id, certificates: both.certificates })
      const reread = yield* keyStore
      assert.strictEqual((yield* reread.current).id, created.id)
      assert.deepStrictEqual((yield* reread.keys).map((k) => k.id).sort(), [created.id, rotated.id].sort())
    }))

  it.live("without a state key, tenant default writes exactly what version 0.1.0 reads", () =>
    Effect.gen(function*() {
      const dataDir = newDataDir()
      const store = yield* openStore(storeIn(dataDir, {}))
      const token = refreshToken("tech1@contoso.example")
      yield* store.refreshTokens.put(defaultTenant, "tech1", token.token)
      const subscriptions = subscriptionState()
      yield* store.subscriptions.save(defaultTenant, subscriptions.state)

      const loaded = yield* loadRefreshToken(dataDir, "tech1", "tech1@contoso.example")
      assert.strictEqual(Redacted.value(Option.getOrThrow(loaded)), token.secrets.clear[0])
      const state = Option.getOrThrow(yield* loadState(dataDir))
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

      // Version 0.1.0's reader (after a downgrade) gets sealed text, which the identity platform refuses:
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
