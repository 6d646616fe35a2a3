/**
 * The PresenceWriter's dispatcher against the PBX simulator over a real socket: latest state wins per user while a
 * write is in flight, at most `maxConcurrent` SetPresence requests in flight, and a long queue is written in full, in
 * turn. Also the per-tick corking of the frames the connection writes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { setPresence } from "../../src/domain/PbxPresence.ts"
import type { PbxMessage } from "../../src/pbx/socket/PbxMessages.ts"
import type { RequestOutcome } from "../../src/pbx/socket/PbxConnection.ts"
import { type Corkable, corkPerTick } from "../../src/pbx/socket/SocketLink.ts"
import { PbxConnections } from "../../src/pbx/socket/PbxConnections.ts"
import { maxConcurrent } from "../../src/pbx/writer/Dispatcher.ts"
import { PbxSimulator } from "../../src/simulators/pbx/PbxSimulator.ts"
import { makeRecordedWaits } from "../support/waiting.ts"
import { makeUsers, password, startConnector as startPbxSide } from "./harness.ts"

/** Counts the SetPresence requests the writer has in flight, and records the order in which they start. */
const makeProbe = () => {
  const started: Array<{ readonly guid: string; readonly activity: string }> = []
  const waits = makeRecordedWaits()
  const probe = {
    started,
    inFlight: 0,
    maxInFlight: 0,
    /** Waits until `check` holds, re-checked whenever a request starts or ends. */
    until: waits.until
  }
  const around = <A, E>(message: PbxMessage, request: Effect.Effect<A, E>) =>
    Effect.suspend(() => {
      if (message.mt !== "SetPresence") return request
      probe.inFlight++
      probe.maxInFlight = Math.max(probe.maxInFlight, probe.inFlight)
      started.push({ guid: String(message["guid"]), activity: String(message["activity"]) })
      waits.recorded()
      return Effect.ensuring(request, Effect.sync(() => void probe.inFlight--))
    })
  /** The same count for a request that reports its outcome through a callback (what the writer uses). */
  const aroundWith = (
    message: PbxMessage,
    onResult: (outcome: RequestOutcome) => void,
    requestWith: (message: PbxMessage, onResult: (outcome: RequestOutcome) => void) => Effect.Effect<void>
  ) =>
    Effect.suspend(() => {
      if (message.mt !== "SetPresence") return requestWith(message, onResult)
      probe.inFlight++
      probe.maxInFlight = Math.max(probe.maxInFlight, probe.inFlight)
      started.push({ guid: String(message["guid"]), activity: String(message["activity"]) })
      waits.recorded()
      return requestWith(message, (outcome) => {
        probe.inFlight--
        onResult(outcome)
      })
    })
  return { probe, around, aroundWith }
}

/** The PBX side with a writer whose connections count its requests. */
const startConnector = Effect.fnUntraced(function*() {
  const { probe, around, aroundWith } = makeProbe()
  const counted = Layer.effect(
    PbxConnections,
    Effect.gen(function*() {
      const real = yield* PbxConnections
      return PbxConnections.of({
        ...real,
        get: (pbx) =>
          Effect.map(
            real.get(pbx),
            Option.map((connection) => ({
              ...connection,
              request: (message: PbxMessage) => around(message, connection.request(message)),
              requestWith: (message: PbxMessage, onResult: (outcome: RequestOutcome) => void) =>
                aroundWith(message, onResult, connection.requestWith)
            }))
          )
      })
    })
  )
  return { ...(yield* startPbxSide({}, { writerConnections: counted })), probe }
})

/** One master PBX with `count` users, all licensed, answering SetPresence after `delayMs`. */
const startPbx = Effect.fnUntraced(function*(url: string, count: number, delayMs: number) {
  const users = makeUsers("w", count, "pbx-master")
  const sim = yield* PbxSimulator.make({
    connectUrl: url,
    domain: "example.com",
    pbxs: [{ name: "pbx-master", isMaster: true, password, lics: count, appObject: "teams-presence", users }]
  })
  yield* sim.setPresenceBehaviour("pbx-master", { delayMs })
  return { sim, guids: users.map((user) => user.guid) }
})

/** Accepted SetPresence activities per guid, in the order the PBX applied them. */
const appliedByGuid = (sim: { readonly peek: { setPresenceLog(): ReadonlyArray<{ readonly guid: string | undefined; readonly activity: string; readonly accepted: boolean }> } }) => {
  const byGuid = new Map<string, Array<string>>()
  for (const record of sim.peek.setPresenceLog()) {
    if (!record.accepted || record.guid === undefined) continue
    const list = byGuid.get(record.guid) ?? []
    list.push(record.activity)
    byGuid.set(record.guid, list)
  }
  return byGuid
}

describe("PresenceWriter queue", () => {
  it.live("a user changed during its in-flight write is sent again once, with the newest state", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      // The PBX holds each answer for 300 ms, so the changes below all happen while the first write is in flight.
      const { sim, guids } = yield* startPbx(connector.url, 2, 300)
      yield* connector.directory.ready
      const [guid, other] = [guids[0]!, guids[1]!]
      yield* connector.writer.write(guid, setPresence("lunch"))
      yield* connector.probe.until(() => connector.probe.started.some((s) => s.guid === guid))
      yield* connector.writer.write(guid, setPresence("away"))
      yield* connector.writer.write(guid, setPresence("busy"))
      yield* connector.writer.write(guid, setPresence("dnd"))
      assert.strictEqual(connector.probe.inFlight, 1, "the first write is still in flight")
      yield* connector.writer.write(other, setPresence("away"))
      yield* connector.writer.flush

      const applied = appliedByGuid(sim)
      assert.deepStrictEqual(applied.get(guid), ["lunch", "dnd"])
      assert.deepStrictEqual(applied.get(other), ["away"])
      assert.deepStrictEqual(connector.probe.started.filter((s) => s.guid === guid).map((s) => s.activity), ["lunch", "dnd"])
      // Never two writes of one user at once: the second started after the first was answered.
      assert.isAtMost(connector.probe.maxInFlight, 2)
      const current = yield* connector.writer.current
      assert.deepStrictEqual(current.get(guid)?.command, setPresence("dnd"))
    }).pipe(Effect.scoped))

  it.live("the writes handed over in one task start when it returns, before the event loop's next turn, in one round", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const { guids } = yield* startPbx(connector.url, 3, 0)
      yield* connector.directory.ready
      for (const guid of guids) yield* connector.writer.write(guid, setPresence("busy"))
      const atOnce = connector.probe.started.length
      // A promise's reaction runs after the microtasks queued before it, and before any immediate or timer.
      yield* Effect.promise(() => Promise.resolve())
      const afterTask = connector.probe.started.map((s) => s.guid)
      yield* connector.writer.flush
      assert.deepStrictEqual({ atOnce, afterTask }, { atOnce: 0, afterTask: guids })
    }).pipe(Effect.scoped))

  it.live(`at most ${maxConcurrent} SetPresence requests are in flight, and the cap is used`, () =>
    Effect.gen(function*() {
      const users = maxConcurrent * 2 + 50
      const connector = yield* startConnector()
      const { sim, guids } = yield* startPbx(connector.url, users, 200)
      yield* connector.directory.ready
      for (const guid of guids) yield* connector.writer.write(guid, setPresence("busy"))
      yield* connector.probe.until(() => connector.probe.inFlight === maxConcurrent)
      yield* connector.writer.flush

      assert.strictEqual(connector.probe.maxInFlight, maxConcurrent)
      assert.strictEqual(connector.probe.inFlight, 0)
      const applied = appliedByGuid(sim)
      assert.strictEqual(applied.size, users)
      for (const guid of guids) assert.deepStrictEqual(applied.get(guid), ["busy"], guid)
    }).pipe(Effect.scoped))

  it.live("10,000 queued users are all written once; users changed again queue behind them", () =>
    Effect.gen(function*() {
      const count = 10_000
      const hot = 50
      const connector = yield* startConnector()
      const { sim, guids } = yield* startPbx(connector.url, count, 20)
      yield* connector.directory.ready
      for (const guid of guids) yield* connector.writer.write(guid, setPresence("away"))
      // Once the first users' writes have started, change them again: each goes back to the end of the queue.
      const hotGuids = new Set(guids.slice(0, hot))
      yield* connector.probe.until(() => connector.probe.started.filter((s) => hotGuids.has(s.guid)).length === hot)
      for (const guid of hotGuids) yield* connector.writer.write(guid, setPresence("busy"))
      yield* connector.writer.flush

      const applied = appliedByGuid(sim)
      assert.strictEqual(applied.size, count, "every user was written")
      for (const guid of guids) {
        assert.deepStrictEqual(applied.get(guid), hotGuids.has(guid) ? ["away", "busy"] : ["away"], guid)
      }
      assert.isAtMost(connector.probe.maxInFlight, maxConcurrent)
      // Fair: the second writes of the changed users start only after every user queued before them has started.
      const started = connector.probe.started
      const lastFirstWrite = started.findLastIndex((s) => s.activity === "away")
      const firstSecondWrite = started.findIndex((s) => s.activity === "busy")
      assert.isAbove(firstSecondWrite, lastFirstWrite)
      assert.strictEqual(started.length, count + hot)
    }).pipe(Effect.scoped), 30_000)
})

describe("corkPerTick", () => {
  it.effect("corks once for the writes of one tick and uncorks on the next tick", () =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      const stream: Corkable = { cork: () => void calls.push("cork"), uncork: () => void calls.push("uncork") }
      const hold = corkPerTick(stream)
      hold()
      hold()
      hold()
      assert.deepStrictEqual(calls, ["cork"])
      yield* Effect.promise(() => new Promise<void>((resolve) => process.nextTick(resolve)))
      assert.deepStrictEqual(calls, ["cork", "uncork"])
      hold()
      assert.deepStrictEqual(calls, ["cork", "uncork", "cork"])
      yield* Effect.promise(() => new Promise<void>((resolve) => process.nextTick(resolve)))
      assert.deepStrictEqual(calls, ["cork", "uncork", "cork", "uncork"])
    }))
})
