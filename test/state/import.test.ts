/**
 * `state import` (src/state/StateImport.ts): a files store copied into PostgreSQL (the test run's embedded server) —
 * every tenant with its refresh tokens, subscription state, notification keys and sessions, read back equal from the
 * database, whose rows hold no secret in clear; files kept in clear (no state key when written) are sealed on the
 * way; a database that holds any of it already is refused with every conflict and left unchanged.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { CertificateSet, defaultTenant, StateStore, SubscriptionState } from "../../src/state/StateStore.ts"
import { importState } from "../../src/state/StateImport.ts"
import { newSchemaUrl } from "../support/postgres.ts"
import { makeTempDir } from "../support/tempDir.ts"
import {
  certificateSet,
  encoded,
  keyEnv,
  newKey,
  openStore,
  refreshToken,
  secretsInText,
  subscriptionState,
  tenant,
  tenantConfig,
  withEnv
} from "./fixtures.ts"

const tables = ["tenants", "refresh_tokens", "subscription_state", "certificates", "presence_sessions"]

const filesIn = (dataDir: string, env: Record<string, string>) => StateStore.layerFiles(dataDir).pipe(Layer.provide(withEnv(env)))
const postgresAt = (url: string, env: Record<string, string>) =>
  StateStore.layerPostgres({ url: Redacted.make(url), maxConnections: 2 }).pipe(Layer.provide(withEnv(env)))

const rawRows = (url: string) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(Layer.fresh(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })))
    const sql = Context.get(context, PgClient.PgClient)
    const parts = yield* Effect.forEach(tables, (table) =>
      sql<{ row: string }>`SELECT row_to_json(t)::text AS row FROM ${sql(table)} t`.pipe(Effect.map((rows) => rows.map((r) => r.row).join("\n"))))
    return parts.join("\n")
  }).pipe(Effect.orDie)

const encodeSubscriptions = Schema.encodeSync(SubscriptionState)
const encodeCertificates = Schema.encodeSync(CertificateSet)

describe("state import: files into PostgreSQL", () => {
  it.live("every tenant and its records, equal in the database, sealed; a second import refused with every conflict", () =>
    Effect.scoped(Effect.gen(function*() {
      const dataDir = yield* makeTempDir("tpc-import-")
      const key = newKey()
      // Written without a state key (files kept in clear, as before one was set); imported with it.
      const files = yield* openStore(filesIn(dataDir, keyEnv(undefined)))
      const alpha = tenant("alpha")
      const beta = tenant("beta")
      const configs = { alpha: tenantConfig("alpha"), beta: tenantConfig("beta") }
      yield* files.tenants.put(alpha, configs.alpha.config)
      yield* files.tenants.put(beta, configs.beta.config)
      const tokens = { d1: refreshToken("tech1@default.example"), d2: refreshToken("tech2@default.example"), a1: refreshToken("tech1@alpha.example") }
      yield* files.refreshTokens.put(defaultTenant, "tech1", tokens.d1.token)
      yield* files.refreshTokens.put(defaultTenant, "tech2", tokens.d2.token)
      yield* files.refreshTokens.put(alpha, "tech1", tokens.a1.token)
      const subscriptions = { default: subscriptionState(), alpha: subscriptionState() }
      yield* files.subscriptions.save(defaultTenant, subscriptions.default.state)
      yield* files.subscriptions.save(alpha, subscriptions.alpha.state)
      const certificates = certificateSet()
      yield* files.certificates.save(defaultTenant, certificates.set)
      yield* files.presenceSessions.save(beta, { version: 1, sessionId: "app-1", userIds: ["u1", "u2"] })

      const url = yield* Effect.promise(newSchemaUrl)
      const env = keyEnv(key)
      const source = yield* openStore(filesIn(dataDir, env))
      const database = yield* openStore(postgresAt(url, env))
      const report = yield* importState(source, database)
      assert.deepStrictEqual(report, { tenants: 2, refreshTokens: 3, subscriptionStates: 2, certificateSets: 1, presenceSessions: 1 })

      // Read back by another process on the database: equal to what the files held.
      const reader = yield* openStore(postgresAt(url, env))
      assert.deepStrictEqual((yield* reader.tenants.list).map((t) => [t.id, encoded.config(t.config)]), [
        ["alpha", encoded.config(configs.alpha.config)],
        ["beta", encoded.config(configs.beta.config)]
      ])
      assert.deepStrictEqual(yield* reader.refreshTokens.accounts(defaultTenant), ["tech1", "tech2"])
      for (const [id, account, expected] of [[defaultTenant, "tech1", tokens.d1], [defaultTenant, "tech2", tokens.d2], [alpha, "tech1", tokens.a1]] as const) {
        const token = Option.getOrThrow(yield* reader.refreshTokens.get(id, account))
        assert.deepStrictEqual(encoded.token(token), encoded.token(expected.token), `${id} ${account}`)
      }
      assert.deepStrictEqual(yield* reader.refreshTokens.accounts(beta), [])
      for (const [id, expected] of [[defaultTenant, subscriptions.default], [alpha, subscriptions.alpha]] as const) {
        assert.deepStrictEqual(encodeSubscriptions(Option.getOrThrow(yield* reader.subscriptions.load(id))), encodeSubscriptions(expected.state))
      }
      assert.isTrue(Option.isNone(yield* reader.subscriptions.load(beta)))
      assert.deepStrictEqual(encodeCertificates(Option.getOrThrow(yield* reader.certificates.load(defaultTenant))), encodeCertificates(certificates.set))
      assert.deepStrictEqual(Option.getOrThrow(yield* reader.presenceSessions.load(beta)).userIds, ["u1", "u2"])

      // The rows: every visible marker there, no secret in clear.
      const secrets = [configs.alpha.secrets, configs.beta.secrets, tokens.d1.secrets, tokens.d2.secrets, tokens.a1.secrets,
        subscriptions.default.secrets, subscriptions.alpha.secrets, certificates.secrets]
      assert.deepStrictEqual(secretsInText(yield* rawRows(url), secrets), { leaked: [], missing: [] })

      // Again: refused before anything is written, naming every conflict.
      const refused = yield* Effect.flip(importState(source, database))
      assert.strictEqual(refused._tag, "ImportRefused")
      const message = refused.message
      for (const part of ["tenant alpha is stored there", "tenant beta is stored there", "tenant default has refresh tokens there (tech1, tech2)",
        "tenant default has subscription state there", "tenant default has notification keys there", "tenant beta has PBX → Teams sessions there"]) {
        assert.include(message, part)
      }
      assert.deepStrictEqual((yield* reader.tenants.list).map((t) => t.version), [1, 1])
    })), 60_000)
})
