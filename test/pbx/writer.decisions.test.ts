/**
 * The decisions the presence writer owns, against the PBX simulator over real sockets: "only what changed" on the PBX
 * side (a command the writer holds is not sent again, unless a new connection of the PBX needs it), where a user's
 * presence goes when the directory moves the user, and the confirmed writes the status page follows.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, PubSub } from "effect"
import { clearPresence, setPresence } from "../../src/domain/PbxPresence.ts"
import { PbxSimulator } from "../../src/simulators/pbx/PbxSimulator.ts"
import { allLoggedIn, makeUsers, password, startConnector } from "./harness.ts"

const system = (url: string) => ({
  connectUrl: url,
  domain: "example.com",
  reconnectDelayMs: 100,
  pbxs: [
    { name: "pbx-master", isMaster: true, password, lics: 10, appObject: "teams-presence", users: makeUsers("m", 2, "pbx-master") },
    { name: "pbx-slave1", isMaster: false, password, lics: 10, appObject: "teams-presence", users: makeUsers("s", 1, "pbx-slave1") }
  ]
})

const start = Effect.gen(function*() {
  const connector = yield* startConnector()
  const sim = yield* PbxSimulator.make(system(connector.url))
  yield* connector.waitStates(allLoggedIn(["pbx-master", "pbx-slave1"]))
  yield* connector.directory.ready
  const sent = (guid: string) => sim.peek.setPresenceLog().filter((record) => record.guid === guid)
  return { connector, sim, sent }
})

describe("PresenceWriter decisions", () => {
  it.live("a command the writer already holds is not sent again; the PBX's next connection gets it again", () =>
    Effect.gen(function*() {
      const { connector, sim, sent } = yield* start
      const guid = makeUsers("m", 1, "pbx-master")[0]!.guid
      yield* connector.writer.write(guid, setPresence("busy", "in a call"))
      yield* connector.writer.flush
      for (let i = 0; i < 3; i++) yield* connector.writer.write(guid, setPresence("busy", "in a call"))
      yield* connector.writer.flush
      assert.deepStrictEqual(sent(guid).map((r) => r.activity), ["busy"])
      assert.deepStrictEqual((yield* connector.writer.desired).get(guid)?.command, setPresence("busy", "in a call"))

      // Changed and changed back before anything was sent: latest wins, and the PBX already has it.
      yield* connector.writer.writeAll([{ guid, command: clearPresence }, { guid, command: setPresence("busy", "in a call") }])
      yield* connector.writer.flush
      assert.deepStrictEqual(sent(guid).map((r) => r.activity), ["busy"])
      // Another command is sent; going back to the first one is a change again.
      yield* connector.writer.write(guid, clearPresence)
      yield* connector.writer.flush
      yield* connector.writer.write(guid, setPresence("busy", "in a call"))
      yield* connector.writer.flush
      assert.deepStrictEqual(sent(guid).map((r) => r.activity), ["busy", "", "busy"])
      const afterChanges = sent(guid).length

      // The same command, but on a new connection of the PBX: sent again.
      yield* sim.drop("pbx-master")
      yield* sim.waitFor(() => sim.peek.status().find((s) => s.name === "pbx-master")!.logins >= 2 || undefined)
      yield* sim.waitFor(() => sent(guid).length > afterChanges || undefined)
      yield* connector.writer.flush
      assert.deepStrictEqual(sent(guid).slice(afterChanges).map((r) => [r.activity, r.note]), [["busy", "in a call"]])
    }).pipe(Effect.scoped))

  it.live("a user the directory moves to another PBX gets the presence again on that PBX's connection", () =>
    Effect.gen(function*() {
      const { connector, sim, sent } = yield* start
      const [user, other] = makeUsers("m", 2, "pbx-master")
      yield* connector.writer.write(user!.guid, setPresence("meeting"))
      yield* connector.writer.write(other!.guid, setPresence("away"))
      yield* connector.writer.flush
      assert.deepStrictEqual(sent(user!.guid).map((r) => r.pbx), ["pbx-master"])

      // A rename moves nobody; the move after it is handled after it (one fiber follows the directory in order).
      yield* sim.upsertUser({ ...other!, cn: "Renamed" })
      yield* sim.upsertUser({ ...user!, loc: "pbx-slave1" })
      const moved = yield* sim.waitFor(() => sent(user!.guid).find((r) => r.pbx === "pbx-slave1"))
      assert.strictEqual(moved.activity, "meeting")
      yield* connector.writer.flush
      assert.strictEqual((yield* connector.writer.current).get(user!.guid)?.pbx, "pbx-slave1")
      assert.deepStrictEqual(sent(other!.guid).map((r) => r.pbx), ["pbx-master"], "the renamed user was not sent again")
    }).pipe(Effect.scoped))

  it.live("confirmed writes are published: a subscription receives the guids, a batch per round of the dispatcher", () =>
    Effect.gen(function*() {
      const { connector } = yield* start
      const confirmations = yield* connector.writer.confirmations
      const guids = [...makeUsers("m", 2, "pbx-master"), ...makeUsers("s", 1, "pbx-slave1")].map((u) => u.guid)
      for (const guid of guids) yield* connector.writer.write(guid, setPresence("dnd"))
      const seen = new Set<string>()
      while (!guids.every((guid) => seen.has(guid))) {
        for (const guid of yield* PubSub.take(confirmations)) seen.add(guid)
      }
      assert.deepStrictEqual([...seen].sort(), [...guids].sort())
      const current = yield* connector.writer.current
      for (const guid of guids) assert.deepStrictEqual(current.get(guid)?.command, setPresence("dnd"), guid)
    }).pipe(Effect.scoped))
})
