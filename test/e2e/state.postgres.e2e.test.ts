/**
 * The connector on PostgreSQL (database.url), end to end over real sockets with the simulators: everything it keeps
 * lands in the database and nothing in the data directory; a restart adopts its Graph subscriptions (none created
 * again, none deleted), signs in with the stored refresh token instead of the password, and presences flow as before.
 * The rows holding secrets are read directly: sealed text only, no refresh token, clientState or private key in clear.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { type DemoHandle, startDemo } from "../../src/demo/Demo.ts"
import { newSchemaUrl } from "../support/postgres.ts"
import { makeTempDir } from "../support/tempDir.ts"
import { until } from "../support/waiting.ts"

interface SimSubscriptions {
  readonly subscriptions: ReadonlyArray<{ readonly id: string; readonly clientState: string | null }>
  readonly counters: { readonly created: number; readonly deleted: number; readonly live: number }
}

const simJson = <A>(demo: DemoHandle, path: string) =>
  Effect.promise(async () => (await (await fetch(demo.graph.url + path)).json()) as A)

const subscriptions = (demo: DemoHandle) => simJson<SimSubscriptions>(demo, "/_sim/subscriptions")

/** Token requests per grant type (the simulator counts `token/<grant_type>`). */
const tokenGrants = (demo: DemoHandle) =>
  Effect.map(
    simJson<{ readonly requestsByRoute: Readonly<Record<string, number>> }>(demo, "/_sim/counters"),
    (counters) => ({ password: counters.requestsByRoute["token/password"] ?? 0, refresh: counters.requestsByRoute["token/refresh_token"] ?? 0 })
  )

const teamsActivity = (demo: DemoHandle, guid: string) =>
  Effect.map(demo.pbx.presence(guid), (list) => list.find((entry) => entry.contact === "teams:")?.activity)

const database = (url: string) =>
  Layer.build(Layer.fresh(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 }))).pipe(
    Effect.map((context) => Context.get(context, PgClient.PgClient)),
    Effect.orDie
  )

const sealed = /^v1\.[0-9a-f]{8}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

describe("state in PostgreSQL", () => {
  it.live("a restart adopts the subscriptions and the sign-in; the secret-holding rows hold sealed text only", () =>
    Effect.scoped(Effect.gen(function*() {
      const url = yield* Effect.promise(newSchemaUrl)
      const dataDir = yield* makeTempDir("tpc-state-pg-")
      const demo = yield* startDemo({
        port: 0,
        userCount: 6,
        changeEverySeconds: 0,
        adminPassword: Redacted.make("pw"),
        dataDir,
        state: { database: { url: Redacted.make(url), maxConnections: 4 }, keys: { current: Redacted.make(randomBytes(32).toString("base64")), previous: [] } }
      })
      const guids = (yield* demo.pbx.users).filter((u) => u.pseudo === undefined).map((u) => u.guid)
      yield* until("every user written once", Effect.map(demo.pbx.setPresenceLog, (log) => guids.every((g) => log.some((r) => r.guid === g)) ? true : undefined))
      const before = yield* until("both subscriptions live", Effect.map(subscriptions(demo), (s) => (s.counters.live === 2 ? s : undefined)))
      const sql = yield* database(url)
      yield* until("the subscription state stored", Effect.map(
        sql<{ n: number }>`SELECT count(*)::int AS n FROM subscription_state`.pipe(Effect.orDie),
        (rows) => (rows[0]!.n === 1 ? true : undefined)
      ))
      // The last command per PBX user: one row per user, confirmed, as the PBX shows it, written by owner epoch 1.
      const lastWritten = (guid: string) =>
        sql<{ pbx: string; command: { _tag: string; activity?: string }; confirmed: boolean; owner_epoch: string }>`SELECT pbx, command,
          confirmed_version = version AS confirmed, owner_epoch::text FROM pbx_desired WHERE tenant_id = 'default' AND guid = ${guid}`.pipe(
          Effect.orDie,
          Effect.map((rows) => rows[0])
        )
      yield* until("the last command of every user kept", Effect.map(
        Effect.forEach(guids, lastWritten),
        (rows) => (rows.every((r) => r?.confirmed === true) ? rows : undefined)
      ))
      for (const guid of guids) {
        const row = (yield* lastWritten(guid))!
        const shown = (yield* demo.pbx.presence(guid)).find((entry) => entry.contact === "teams:")?.activity ?? ""
        assert.strictEqual(row.command._tag === "Set" ? row.command.activity : "", shown)
        assert.strictEqual(row.owner_epoch, "1")
      }
      const signIns = yield* tokenGrants(demo)
      assert.strictEqual(signIns.password, 1, "the account signed in once with its password")

      // The secret-holding rows, read directly.
      const tokens = yield* sql<{ account: string; refresh_token_sealed: string }>`SELECT account, refresh_token_sealed FROM refresh_tokens`.pipe(Effect.orDie)
      assert.deepStrictEqual(tokens.map((t) => t.account), ["presence-1"])
      assert.match(tokens[0]!.refresh_token_sealed, sealed)
      const keys = yield* sql<{ private_key_sealed: string; certificate: string }>`SELECT private_key_sealed, certificate FROM certificates`.pipe(Effect.orDie)
      assert.isAtLeast(keys.length, 1)
      for (const key of keys) assert.match(key.private_key_sealed, sealed)
      const states = yield* sql<{ state: { shards: ReadonlyArray<{ subscription?: { subscriptionId: string; clientState: string } }>; users?: { subscriptionId: string; clientState: string } } }>`SELECT state FROM subscription_state`.pipe(Effect.orDie)
      const stored = [...states[0]!.state.shards.flatMap((s) => (s.subscription === undefined ? [] : [s.subscription])), states[0]!.state.users!]
      assert.deepStrictEqual(stored.map((s) => s.subscriptionId).sort(), before.subscriptions.map((s) => s.id).sort())
      for (const subscription of stored) assert.match(subscription.clientState, sealed)
      const everything = yield* sql<{ text: string }>`SELECT concat_ws(' ',
          (SELECT string_agg(r::text, ' ') FROM refresh_tokens r), (SELECT string_agg(s::text, ' ') FROM subscription_state s),
          (SELECT string_agg(c::text, ' ') FROM certificates c), (SELECT string_agg(p::text, ' ') FROM presence_sessions p)) AS text`.pipe(Effect.orDie)
      const text = everything[0]!.text
      assert.notInclude(text, "sim-rt-", "no refresh token of the identity platform in clear")
      assert.notInclude(text, "PRIVATE KEY", "no private key in clear")
      for (const s of before.subscriptions) assert.notInclude(text, s.clientState!, "no clientState in clear")
      // Nothing of the state in the data directory: only the generated files that are not state.
      for (const name of ["accounts", "subscriptions.json", "rich-notification-keys.json", "pbx-to-teams-sessions.json"]) {
        assert.isFalse(existsSync(join(dataDir, name)), `${name} is not in the data directory`)
      }

      // A restart: the subscriptions are adopted, the stored refresh token is used.
      yield* demo.restartConnector
      const [first, second] = demo.teamsUserIds
      yield* demo.graph.setPresence(first!, { availability: "Busy", activity: "InAMeeting" })
      yield* demo.graph.setPresence(second!, { availability: "Busy", activity: "Busy" })
      const changed = yield* Effect.forEach(["user1@contoso.com", "user2@contoso.com"], (email) =>
        Effect.map(demo.pbx.users, (users) => users.find((u) => (u.emails ?? []).includes(email))!.guid))
      const written = yield* until("the presences after the restart at the PBX", Effect.gen(function*() {
        const activities = yield* Effect.forEach(changed, (guid) => teamsActivity(demo, guid))
        return activities[0] === "meeting" && activities[1] === "busy" ? activities : undefined
      }))
      assert.deepStrictEqual(written, ["meeting", "busy"])
      yield* until("the restarted owner's commands kept", Effect.map(
        Effect.forEach(changed, lastWritten),
        (rows) => (rows.every((r) => r?.confirmed === true && r.owner_epoch === "2") ? rows : undefined)
      ))
      assert.deepStrictEqual((yield* Effect.forEach(changed, lastWritten)).map((r) => r!.command.activity), ["meeting", "busy"])
      const after = yield* subscriptions(demo)
      assert.deepStrictEqual(after.subscriptions.map((s) => s.id).sort(), before.subscriptions.map((s) => s.id).sort(), "the same subscriptions")
      assert.strictEqual(after.counters.created, before.counters.created, "no subscription created again")
      assert.strictEqual(after.counters.deleted, 0)
      const resigned = yield* tokenGrants(demo)
      assert.strictEqual(resigned.password, 1, "no new sign-in with the password after the restart")
      assert.isAbove(resigned.refresh, signIns.refresh, "the stored refresh token was redeemed")
      for (const name of ["accounts", "subscriptions.json", "rich-notification-keys.json"]) {
        assert.isFalse(existsSync(join(dataDir, name)), `${name} is not in the data directory after the restart`)
      }
    })))
})
