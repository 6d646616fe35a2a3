/**
 * `tenants add|update|list|remove` as real processes on PostgreSQL: a store opened in this process (as a running
 * connector opens it) sees each change the command makes, the tenants row holds the secrets sealed only (read
 * directly), a second add and an invalid file are refused with exit 1 and nothing stored, and no secret is printed.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Queue, Redacted, Stream } from "effect"
import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import * as YAML from "yaml"
import { openStateStore } from "../../src/state/StateSettings.ts"
import type { TenantChange } from "../../src/state/StateStore.ts"
import { shellEnv } from "../support/node.ts"
import { newSchemaUrl } from "../support/postgres.ts"
import { mainFile, writeConfig } from "../support/processes.ts"
import { makeTempDir } from "../support/tempDir.ts"

const cli = (args: ReadonlyArray<string>, extra: Record<string, string>) =>
  Effect.callback<{ readonly code: number; readonly out: string }>((resume) => {
    execFile(process.execPath, [mainFile, ...args], { env: { ...shellEnv(), ...extra }, timeout: 60_000 }, (error, stdout, stderr) => {
      resume(Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, out: `${stdout}${stderr}` }))
    })
  })

const secrets = ["fab-client-secret-1", "fab-account-pw-1", "fab-app-pw-1"]
const tenantFile = (dir: string, name: string, content: Record<string, unknown>) => {
  const file = join(dir, name)
  writeFileSync(file, YAML.stringify(content))
  return file
}
const fabrikam = (appPassword: string) => ({
  tenantId: "fabrikam.onmicrosoft.com",
  clientId: "22222222-2222-3333-4444-555555555555",
  app: { clientSecret: secrets[0] },
  accounts: [{ name: "tech1", username: "tech1@fabrikam.com", flow: "password", password: secrets[1] }],
  notifications: { publicBaseUrl: "https://presence.fabrikam.example" },
  pbx: { masterPbx: "pbx-fab", appPassword }
})

describe("tenants on the command line (real processes, PostgreSQL)", () => {
  it.live("add, list, update, remove: seen by a running store, sealed in the row, refused when wrong", () =>
    Effect.scoped(Effect.gen(function*() {
      const url = yield* Effect.promise(newSchemaUrl)
      const key = randomBytes(32).toString("base64")
      const dir = yield* makeTempDir("tpc-tenants-cli-")
      const config = writeConfig(dir, 8080)
      const env = { CONNECTOR_DATABASE_URL: url, CONNECTOR_STATE_KEY: key }
      const store = yield* openStateStore({
        dataDir: join(dir, "data"),
        database: { url: Redacted.make(url), maxConnections: 3 },
        keys: { current: Redacted.make(key), previous: [] }
      })
      const changes = yield* Queue.unbounded<TenantChange>()
      yield* store.tenants.changes.pipe(Stream.runForEach((change) => Queue.offer(changes, change)), Effect.forkScoped)

      const added = yield* cli(["tenants", "add", "fabrikam", "--file", tenantFile(dir, "fabrikam.yaml", fabrikam(secrets[2]!)), "--config", config], env)
      assert.strictEqual(added.code, 0, added.out)
      assert.match(added.out, /tenant fabrikam added \(PostgreSQL 127\.0\.0\.1:\d+\/\w+\): fabrikam \(version 1\): Microsoft tenant fabrikam/)
      assert.deepStrictEqual(yield* Queue.take(changes), { kind: "added", id: "fabrikam", version: 1 } as TenantChange)

      const sql = Context.get(
        yield* Layer.build(Layer.fresh(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 }))).pipe(Effect.orDie),
        PgClient.PgClient
      )
      const rows = yield* sql<{ text: string; secret: string }>`SELECT config::text AS text, config #>> '{pbx,appPassword}' AS secret
        FROM tenants WHERE id = 'fabrikam'`.pipe(Effect.orDie)
      assert.match(rows[0]!.secret, /^v1\.[0-9a-f]{8}\./)
      for (const secret of secrets) assert.notInclude(rows[0]!.text, secret, "no secret in clear in the tenants row")
      assert.include(rows[0]!.text, "pbx-fab")

      const again = yield* cli(["tenants", "add", "fabrikam", "--file", join(dir, "fabrikam.yaml"), "--config", config], env)
      assert.strictEqual(again.code, 1)
      assert.include(again.out, "tenant fabrikam exists already: use tenants update")
      const invalid = yield* cli(
        ["tenants", "add", "other", "--file", tenantFile(dir, "other.yaml", { ...fabrikam("other-pw-9"), http: { port: 1 }, clientId: undefined }), "--config", config],
        env
      )
      assert.strictEqual(invalid.code, 1)
      assert.match(invalid.out, /other\.yaml: 2 problems/)
      assert.notInclude(invalid.out, "other-pw-9")
      assert.deepStrictEqual((yield* store.tenants.list).map((t) => t.id), ["fabrikam"], "nothing stored for a refused file")

      const updated = yield* cli(["tenants", "update", "fabrikam", "--file", tenantFile(dir, "fabrikam.yaml", fabrikam("fab-app-pw-2")), "--config", config], env)
      assert.strictEqual(updated.code, 0, updated.out)
      assert.deepStrictEqual(yield* Queue.take(changes), { kind: "updated", id: "fabrikam", version: 2 } as TenantChange)
      const stored = yield* store.tenants.get("fabrikam" as never)
      assert.strictEqual(stored._tag === "Some" ? Redacted.value(stored.value.config.pbx.appPassword) : undefined, "fab-app-pw-2")

      const listed = yield* cli(["tenants", "list", "--config", config], env)
      assert.strictEqual(listed.code, 0, listed.out)
      assert.include(listed.out, "1 tenant(s)")
      assert.include(listed.out, "fabrikam (version 2)")
      const removed = yield* cli(["tenants", "remove", "fabrikam", "--config", config], env)
      assert.strictEqual(removed.code, 0, removed.out)
      assert.deepStrictEqual(yield* Queue.take(changes), { kind: "removed", id: "fabrikam", version: 2 } as TenantChange)
      const defaultRefused = yield* cli(["tenants", "remove", "default", "--config", config], env)
      assert.strictEqual(defaultRefused.code, 1)
      assert.include(defaultRefused.out, "tenant default is the connector's configuration file")
      for (const output of [added, again, invalid, updated, listed, removed]) {
        for (const secret of [...secrets, "fab-app-pw-2", key]) assert.notInclude(output.out, secret)
      }
    })), 120_000)
})
