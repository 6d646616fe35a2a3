/**
 * Runs docs/examples/embed.ts — the embedding example the documentation shows — against the Graph simulator and a
 * PBX simulator over real sockets, and checks that docs/embedding.md shows exactly that file.
 */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { Context, Effect, Layer, Option, Stream } from "effect"
import { StatusBoard } from "teams-presence-connector"
import {
  GraphSimulator,
  generateUsers,
  PbxSimulator,
  type SimPbxOptions,
  simUserId,
  SubscriptionsExtension
} from "teams-presence-connector/testing"
import { EmbeddedConnector, type EmbedOptions, reportWhenGreen } from "../../docs/examples/embed.ts"
import { freePort } from "../../src/http/Server.ts"
import { teamsEntry } from "../support/pbxPresence.ts"
import { makeTempDir } from "../support/tempDir.ts"

const root = join(import.meta.dirname, "../..")

const tenantId = "0b1c2d3e-0000-4000-8000-00000000e1b0"
const clientId = "0b1c2d3e-0000-4000-8000-00000000c11e"
const userCount = 6

const pbxGuid = (n: number): string => `e0b0${String(n).padStart(4, "0")}`.padEnd(32, "0")

/** PBX users carrying the Teams users' addresses (email matching), licensed through the App object's name. */
const pbxUsers = (home: string, numbers: ReadonlyArray<number>) =>
  numbers.map((n) => ({
    guid: pbxGuid(n),
    h323: `user${n}`,
    cn: `User ${n}`,
    emails: [`user${n}@contoso.com`],
    loc: home,
    apps: ["teams-presence"]
  }))

const pbx = (name: string, isMaster: boolean, numbers: ReadonlyArray<number>): SimPbxOptions => ({
  name,
  isMaster,
  password: "embedded-app-object-password",
  lics: userCount,
  appObject: "teams-presence",
  users: pbxUsers(name, numbers)
})

describe("embedding (docs/examples/embed.ts)", () => {
  it("docs/embedding.md shows docs/examples/embed.ts exactly", () => {
    const markdown = readFileSync(join(root, "docs/embedding.md"), "utf8")
    const example = readFileSync(join(root, "docs/examples/embed.ts"), "utf8")
    const block = /```ts embed\.ts\n([\s\S]*?)```/.exec(markdown)
    assert.isNotNull(block, "docs/embedding.md has a ```ts embed.ts code block")
    assert.strictEqual(block![1], example)
  })

  it.live("the embedded connector turns all lights green and carries a Teams presence into the PBX", () =>
    Effect.gen(function*() {
      const graph = yield* GraphSimulator.make({
        tenantId,
        clientId,
        clientSecrets: [{ value: "embedded-client-secret" }],
        accounts: [{ upn: "presence-1@contoso.com", password: "embedded-account-password" }],
        users: generateUsers(userCount),
        extensions: [SubscriptionsExtension({ batchWindowMillis: 20 })]
      })
      const port = yield* freePort()
      const options: EmbedOptions = {
        microsoftBaseUrl: graph.url,
        tenantId,
        clientId,
        clientSecret: "embedded-client-secret",
        account: { username: "presence-1@contoso.com", password: "embedded-account-password" },
        publicBaseUrl: `http://127.0.0.1:${port}`,
        port,
        pbx: { masterPbx: "pbx-master", appPassword: "embedded-app-object-password" },
        adminPassword: "embedded-admin-password",
        dataDir: yield* makeTempDir("tpc-embed-"),
        logLevel: "error"
      }
      // The PBXs connect to the connector's websocket and keep retrying until it listens.
      const pbxSim = yield* PbxSimulator.make({
        connectUrl: `ws://127.0.0.1:${port}/pbx`,
        domain: "example.com",
        pbxs: [pbx("pbx-master", true, [1, 3, 5]), pbx("pbx-slave", false, [2, 4, 6])]
      })

      const connector = yield* Layer.build(EmbeddedConnector(options))
      const snapshot = yield* reportWhenGreen.pipe(Effect.provide(connector))

      for (const [name, light] of Object.entries(snapshot.lights)) assert.strictEqual(light.state, "green", `${name}: ${light.reason}`)
      // The technical account is a Teams user too, counted on its own: nobody's presence, nobody to match.
      assert.strictEqual(snapshot.counts.teamsUsers, userCount)
      assert.strictEqual(snapshot.counts.technicalAccounts, 1)
      assert.strictEqual(snapshot.counts.unmatched, 0)
      assert.strictEqual(snapshot.counts.licensed, userCount)
      assert.deepStrictEqual(snapshot.pbxs.map((p) => [p.pbx, p.state]), [["pbx-master", "green"], ["pbx-slave", "green"]])

      // A presence set in Teams reaches the PBX on the connector's contact — for a user at the master and one at the slave.
      for (const n of [1, 2]) {
        const guid = pbxGuid(n)
        assert.notStrictEqual(teamsEntry(pbxSim.peek.presence(guid))?.activity, "meeting")
        yield* graph.setPresence(simUserId(n), { availability: "Busy", activity: "InAMeeting" })
        const entry = yield* pbxSim.waitFor(() => {
          const newest = teamsEntry(pbxSim.peek.presence(guid))
          return newest?.activity === "meeting" ? newest : undefined
        }, 15_000)
        assert.strictEqual(entry.status, "open")
        const [first] = yield* pbxSim.presence(guid)
        assert.strictEqual(first?.contact, "teams:")
        assert.strictEqual(first?.activity, "meeting")
      }

      // The board the embedding application reads follows: the user's row shows what was written to the PBX.
      const board = Context.get(connector, StatusBoard)
      const row = yield* board.changes.pipe(
        Stream.map((s) => s.users.find((u) => u.teamsId === simUserId(1))),
        Stream.filter((u) => u?.written === "meeting"),
        Stream.runHead,
        Effect.timeout("10 seconds")
      )
      assert.isTrue(Option.isSome(row))
      assert.strictEqual(Option.getOrThrow(row)?.activity, "InAMeeting")
    }).pipe(Effect.scoped), { timeout: 45_000 })
})
