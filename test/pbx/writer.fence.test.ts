/**
 * A fenced presence writer (src/pbx/writer/SendFence.ts, as a cluster's sender installs it), against the PBX simulator
 * over a real socket: a command handed over goes out at once without a check; the writer's own later sends (a retry
 * here) go out only once the check keeps them; a command the check does not keep is forgotten and never sent again;
 * while the check fails, nothing waiting is sent.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger } from "effect"
import type { PbxPresenceCommand } from "../../src/domain/PbxPresence.ts"
import { setPresence } from "../../src/domain/PbxPresence.ts"
import { PbxSimulator } from "../../src/simulators/pbx/PbxSimulator.ts"
import { makeRecordedWaits } from "../support/waiting.ts"
import { allLoggedIn, makeUsers, password, startConnector } from "./harness.ts"

const master = "pbx-master"

const setUp = Effect.gen(function*() {
  const { recorded, until } = makeRecordedWaits()
  const connector = yield* startConnector()
  const users = makeUsers("m", 2, master)
  const sim = yield* PbxSimulator.make({
    connectUrl: connector.url,
    domain: "example.com",
    pbxs: [{ name: master, isMaster: true, password, lics: 4, appObject: "teams-presence", users }]
  })
  yield* connector.waitStates(allLoggedIn([master]))
  yield* connector.directory.ready
  // The check the writer asks: what it was asked, and what it answers (`fail`: the store does not answer).
  const decide = { keep: true, fail: false }
  const checks: Array<ReadonlyArray<string>> = []
  // The fence's own log lines (its fiber runs with the logger it was installed with).
  const logs: Array<string> = []
  const capture = Logger.make(({ message }) => {
    logs.push(Array.isArray(message) ? message.map(String).join(" ") : String(message))
    recorded()
  })
  yield* connector.writer.fence!((held: ReadonlyMap<string, PbxPresenceCommand>) =>
    Effect.suspend(() => {
      checks.push([...held.keys()])
      recorded()
      if (decide.fail) return Effect.fail(new Error("the state database did not answer"))
      return Effect.succeed(decide.keep ? new Set(held.keys()) : new Set<string>())
    })
  ).pipe(Effect.provide(Logger.layer([capture], { mergeWithExisting: false })))
  const logged = (text: string) => until(() => logs.some((line) => line.includes(text)))
  const attempts = (guid: string) => sim.peek.setPresenceLog().filter((record) => record.guid === guid)
  const attempted = (guid: string, count: number) => sim.waitFor(() => (attempts(guid).length >= count ? true : undefined))
  return { connector, sim, decide, checks, until, logged, attempts, attempted, guid: users[0]!.guid }
})

describe("a fenced presence writer", () => {
  it.live("a hand-over goes out at once; a retry only once checked; a command the check does not keep is forgotten", () =>
    Effect.gen(function*() {
      const { attempted, attempts, checks, connector, decide, guid, logged, sim, until } = yield* setUp
      yield* sim.setPresenceBehaviour(master, { refuse: "temporarily unavailable" })
      yield* connector.writer.write(guid, setPresence("away"))
      yield* attempted(guid, 1)
      assert.deepStrictEqual(checks, [], "the hand-over was sent without a check")

      // The retry is checked first, kept, and sent (refused again).
      yield* attempted(guid, 2)
      assert.deepStrictEqual(checks, [[guid]])

      // The next retry's check does not keep it: forgotten, its retries end, nothing more is sent.
      decide.keep = false
      yield* until(() => checks.length >= 2)
      yield* logged(`forgotten, not sent again: another PBX's holder writes them now, or a newer command comes: ${guid}`)
      assert.isFalse((yield* connector.writer.desired).has(guid))
      yield* sim.setPresenceBehaviour(master, { refuse: undefined })
      yield* connector.writer.flush
      assert.strictEqual(attempts(guid).length, 2, "no attempt after the check refused the command")

      // A new hand-over is the writer's again, and goes out at once.
      yield* connector.writer.write(guid, setPresence("busy"))
      yield* connector.writer.flush
      assert.deepStrictEqual(attempts(guid).map((r) => [r.activity, r.accepted]), [["away", false], ["away", false], ["busy", true]])
      assert.strictEqual(checks.length, 2)
    }).pipe(Effect.scoped), 30_000)

  it.live("while the check fails, a re-send waits; once it answers, the re-send goes out", () =>
    Effect.gen(function*() {
      const { attempted, attempts, checks, connector, decide, guid, logged, sim } = yield* setUp
      yield* connector.writer.write(guid, setPresence("dnd"))
      yield* connector.writer.flush
      assert.strictEqual(attempts(guid).length, 1)

      // The PBX logs in again: the writer re-sends its users, but the check cannot be made.
      decide.fail = true
      yield* sim.drop(master)
      yield* logged("checking 1 users' PBX commands before sending them again failed")
      assert.strictEqual(attempts(guid).length, 1, "nothing sent while the check fails")

      // The store answers again: the next try keeps it, and the re-send goes out on the new connection.
      decide.fail = false
      yield* attempted(guid, 2)
      assert.isAtLeast(checks.length, 2)
      assert.deepStrictEqual(attempts(guid).map((r) => [r.activity, r.accepted]), [["dnd", true], ["dnd", true]])
    }).pipe(Effect.scoped), 30_000)
})
