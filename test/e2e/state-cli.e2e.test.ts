/**
 * The state store from the command line, in real processes: `check-config` says where the state is and which key
 * seals it (a database needs CONNECTOR_STATE_KEY), `run` against a database it cannot reach stops with a clear message,
 * and `state rekey` seals again — in the files (values in clear from before a key was set) and in PostgreSQL (values
 * sealed with the previous key), and `state import` copies a data directory's files into PostgreSQL. Never a password
 * or a key in the output.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Redacted } from "effect"
import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { openStateStore } from "../../src/state/StateSettings.ts"
import { defaultTenant } from "../../src/state/StateStore.ts"
import { saveRefreshToken, saveState } from "../support/legacyDataDir.ts"
import { shellEnv } from "../support/node.ts"
import { newSchemaUrl } from "../support/postgres.ts"
import { mainFile, writeConfig } from "../support/processes.ts"
import { makeTempDir, tempDirSync } from "../support/tempDir.ts"
import { keyIdOf } from "../state/fixtures.ts"

interface Outcome {
  readonly code: number
  readonly out: string
}

/** `node src/main.ts <args>` with the environment plus `extra`; stdout and stderr together. */
const cli = (args: ReadonlyArray<string>, extra: Record<string, string>) =>
  Effect.callback<Outcome>((resume) => {
    execFile(process.execPath, [mainFile, ...args], { env: { ...shellEnv(), ...extra }, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
      resume(Effect.succeed({ code, out: `${stdout}${stderr}` }))
    })
  })

const newKey = () => randomBytes(32).toString("base64")
const dbPassword = "db-pass-never-shown"

/** A data directory as before the state store (files in clear): one account's refresh token and one shard's subscription. */
const dataDirWithSecrets = Effect.fnUntraced(function*(token: string, clientState: string) {
  const dir = yield* makeTempDir("tpc-state-cli-")
  const dataDir = join(dir, "data")
  const config = writeConfig(dir, 8080)
  yield* saveRefreshToken(dataDir, "tech1", "tech1@contoso.example", Redacted.make(token))
  yield* saveState(dataDir, {
    version: 1,
    shards: [{ key: "s0", account: "tech1", userIds: ["u1"], subscription: { subscriptionId: "sub-1", clientState, expiresAt: 5 } }]
  })
  return { dir, dataDir, config, token }
})

describe("state store on the command line (real processes)", () => {
  it.live("check-config: a database needs CONNECTOR_STATE_KEY; with it, where the state is and the key's id, never a secret", () =>
    Effect.gen(function*() {
      const dir = yield* makeTempDir("tpc-state-cli-")
      const config = writeConfig(dir, 8080)
      const database = { CONNECTOR_DATABASE_URL: `postgres://connector:${dbPassword}@127.0.0.1:1/presence` }
      const key = newKey()
      // Four separate processes, side by side (each one is a whole start of Node.js and the command line).
      const [missing, malformed, valid, files] = yield* Effect.all([
        cli(["check-config", "--config", config], database),
        cli(["check-config", "--config", config], { ...database, CONNECTOR_STATE_KEY: "short-key-value" }),
        cli(["check-config", "--config", config], { ...database, CONNECTOR_STATE_KEY: key }),
        cli(["check-config", "--config", config], {})
      ], { concurrency: "unbounded" })
      assert.strictEqual(missing.code, 1, missing.out)
      assert.match(missing.out, /CONNECTOR_STATE_KEY: required with database\.url/)
      assert.notInclude(missing.out, dbPassword)

      assert.strictEqual(malformed.code, 1, malformed.out)
      assert.include(malformed.out, "CONNECTOR_STATE_KEY")
      assert.notInclude(malformed.out, "short-key-value")

      assert.strictEqual(valid.code, 0, valid.out)
      assert.include(valid.out, "database:          127.0.0.1:1/presence")
      assert.include(valid.out, `state:             PostgreSQL 127.0.0.1:1/presence; secrets sealed with state key ${yield* keyIdOf(key)}`)
      assert.notInclude(valid.out, dbPassword)
      assert.notInclude(valid.out, key)

      assert.strictEqual(files.code, 0, files.out)
      assert.include(files.out, `state:             files in ${join(dir, "data")}; secrets in clear (no CONNECTOR_STATE_KEY)`)
    }), 120_000)

  it.live("run: a state database that cannot be reached stops the start with what to check, exit 1, no password", () =>
    Effect.gen(function*() {
      const dir = yield* makeTempDir("tpc-state-cli-")
      const outcome = yield* cli(["run", "--config", writeConfig(dir, 0)], {
        CONNECTOR_DATABASE_URL: `postgres://connector:${dbPassword}@127.0.0.1:1/presence`,
        CONNECTOR_STATE_KEY: newKey()
      })
      assert.strictEqual(outcome.code, 1, outcome.out)
      assert.match(outcome.out, /cannot connect to the state database 127\.0\.0\.1:1\/presence .*check database\.url/)
      assert.notInclude(outcome.out, dbPassword)
    }), 120_000)

  it.live("state rekey on files: the secrets in clear from before the key are sealed; a second run finds nothing", () =>
    Effect.gen(function*() {
      const { dataDir, config, token } = yield* dataDirWithSecrets("0.AAA-refresh-token-in-clear", "client-state-in-clear")
      const key = newKey()
      const first = yield* cli(["state", "rekey", "--config", config], { CONNECTOR_STATE_KEY: key })
      assert.strictEqual(first.code, 0, first.out)
      assert.include(first.out, `state rekey (files in ${dataDir}): 2 secret(s) sealed again with the current state key`)
      const stored = readFileSync(join(dataDir, "accounts", "tech1.refresh-token.json"), "utf8")
      assert.notInclude(stored, token)
      assert.include(stored, `v1.${yield* keyIdOf(key)}.`)
      assert.notInclude(readFileSync(join(dataDir, "subscriptions.json"), "utf8"), "client-state-in-clear")
      const second = yield* cli(["state", "rekey", "--config", config], { CONNECTOR_STATE_KEY: key })
      assert.include(second.out, ": 0 secret(s) sealed again")
      assert.notInclude(`${first.out}${second.out}`, key)
    }), 120_000)

  it.live("state rekey on PostgreSQL: values sealed with the previous key are sealed with the new one", () =>
    Effect.gen(function*() {
      const url = yield* Effect.promise(newSchemaUrl)
      const [oldKey, key] = [newKey(), newKey()]
      const settings = (current: string, previous: ReadonlyArray<string>) => ({
        dataDir: tempDirSync("tpc-state-cli-"),
        database: { url: Redacted.make(url), maxConnections: 2 },
        keys: { current: Redacted.make(current), previous: previous.map((k) => Redacted.make(k)) }
      })
      const token = { username: "tech1@contoso.example", refreshToken: Redacted.make("0.AAA-refresh-token-sealed-with-the-old-key") }
      yield* Effect.scoped(Effect.flatMap(openStateStore(settings(oldKey, [])), (store) => store.refreshTokens.put(defaultTenant, "tech1", token)))

      const dir = yield* makeTempDir("tpc-state-cli-")
      const config = writeConfig(dir, 8080)
      const env = { CONNECTOR_DATABASE_URL: url, CONNECTOR_STATE_KEY: key, CONNECTOR_STATE_KEY_PREVIOUS: oldKey }
      const first = yield* cli(["state", "rekey", "--config", config], env)
      assert.strictEqual(first.code, 0, first.out)
      assert.match(first.out, /state rekey \(PostgreSQL 127\.0\.0\.1:\d+\/\w+\): 1 secret\(s\) sealed again/)
      assert.include((yield* cli(["state", "rekey", "--config", config], env)).out, ": 0 secret(s) sealed again")
      for (const secret of [oldKey, key, url]) assert.notInclude(first.out, secret)

      // Only the new key now: the token opens.
      const read = yield* Effect.scoped(Effect.flatMap(openStateStore(settings(key, [])), (store) => store.refreshTokens.get(defaultTenant, "tech1")))
      assert.strictEqual(Redacted.value(Option.getOrThrow(read).refreshToken), Redacted.value(token.refreshToken))
    }), 120_000)

  it.live("state import: a data directory's files copied into PostgreSQL, sealed; run twice, refused with what is there", () =>
    Effect.gen(function*() {
      const { dataDir, config, token } = yield* dataDirWithSecrets("0.AAA-refresh-token-in-the-files", "client-state-in-the-files")
      const url = yield* Effect.promise(newSchemaUrl)
      const key = newKey()
      const noDatabase = yield* cli(["state", "import", "--config", config], { CONNECTOR_STATE_KEY: key })
      assert.strictEqual(noDatabase.code, 1, noDatabase.out)
      assert.include(noDatabase.out, "database.url")

      const env = { CONNECTOR_DATABASE_URL: url, CONNECTOR_STATE_KEY: key }
      const first = yield* cli(["state", "import", "--config", config], env)
      assert.strictEqual(first.code, 0, first.out)
      assert.include(first.out, `state import: from files in ${dataDir} into PostgreSQL`)
      assert.include(first.out, "tenant default and 0 stored tenant(s), 1 refresh token(s), 1 subscription state(s)")
      const second = yield* cli(["state", "import", "--config", config], env)
      assert.strictEqual(second.code, 1, second.out)
      assert.include(second.out, "nothing was copied")
      assert.include(second.out, "tenant default has refresh tokens there (tech1)")
      for (const secret of [key, url, token]) assert.notInclude(`${first.out}${second.out}`, secret)

      const settings = { dataDir: yield* makeTempDir("tpc-state-cli-"), database: { url: Redacted.make(url), maxConnections: 2 }, keys: { current: Redacted.make(key), previous: [] } }
      const read = yield* Effect.scoped(Effect.flatMap(openStateStore(settings), (store) =>
        Effect.all([store.refreshTokens.get(defaultTenant, "tech1"), store.subscriptions.load(defaultTenant)])))
      assert.strictEqual(Redacted.value(Option.getOrThrow(read[0]).refreshToken), token)
      assert.strictEqual(Option.getOrThrow(read[1]).shards[0]?.subscription?.subscriptionId, "sub-1")
    }), 120_000)
})
