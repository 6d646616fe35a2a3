/**
 * The PBX side of PBX → Teams over real sockets against the PBX simulator (master + slave): each user's calls are
 * watched on the PBX the user is registered at, the PBX's on-the-phone activity makes the user "in a call" (not the
 * connector's own teams: entry, not for a watcher without the right), a dropped PBX makes its users "not in a call"
 * until it is back and watched again, a user who moves is watched on the new PBX, and a missing API is named.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Layer, Redacted, Stream, SubscriptionRef } from "effect"
import { setPresence } from "../../src/domain/PbxPresence.ts"
import { type CallChange, CallWatch } from "../../src/pbx/calls/CallWatch.ts"
import { presenceProtocol, rccProtocol, type WatchedUser, type WatchProtocol } from "../../src/pbx/calls/WatchProtocol.ts"
import { PbxConnections } from "../../src/pbx/socket/PbxConnections.ts"
import { makePbxSettings, PbxSettings } from "../../src/pbx/PbxSettings.ts"
import { PbxSimulator, type SimUser } from "../../src/simulators/pbx/PbxSimulator.ts"
import { allLoggedIn, makeUsers, password, startConnector } from "./harness.ts"

const masterUsers = makeUsers("m", 2, "pbx-master")
const slaveUsers = makeUsers("s", 2, "pbx-slave")

const system = (url: string, apis?: ReadonlyArray<string>, extra: ReadonlyArray<SimUser> = []) => ({
  connectUrl: url,
  domain: "example.com",
  reconnectDelayMs: 100,
  pbxs: [
    { name: "pbx-master", isMaster: true, password, appObject: "teams-presence", users: [...masterUsers, ...extra], ...(apis ? { apis } : {}) },
    { name: "pbx-slave", isMaster: false, password, appObject: "teams-presence", users: slaveUsers, ...(apis ? { apis } : {}) }
  ]
})

const watched = (user: SimUser): WatchedUser => ({ guid: user.guid, h323: user.h323, cn: user.cn, loc: user.loc ?? "pbx-master" })

/** The watch over the harness's PBX registry, and every change it reports, in order. */
const startWatch = (connector: Effect.Success<ReturnType<typeof startConnector>>, protocol: WatchProtocol) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(CallWatch.layer({ protocol, answerTimeoutMillis: 5_000, refusedRetryMillis: 60_000 }).pipe(
      Layer.provide(Layer.succeed(PbxConnections, connector.connections)),
      Layer.provide(PbxSettings.layer(makePbxSettings({ appPassword: Redacted.make(password), masterPbx: "pbx-master" })))
    ))
    const watch = Context.get(context, CallWatch)
    const seen = yield* SubscriptionRef.make<ReadonlyArray<CallChange>>([])
    const started = yield* Deferred.make<void>()
    yield* watch.changes.pipe(
      Stream.onStart(Deferred.succeed(started, undefined)),
      Stream.runForEach((change) => SubscriptionRef.update(seen, (all) => [...all, change])),
      Effect.forkScoped
    )
    yield* Deferred.await(started)
    /** Waits until the changes seen satisfy `check`. */
    const until = (check: (changes: ReadonlyArray<CallChange>) => boolean) =>
      Stream.runHead(Stream.filter(SubscriptionRef.changes(seen), check)).pipe(Effect.asVoid)
    const last = (guid: string) => (changes: ReadonlyArray<CallChange>) => changes.filter((c) => c.guid === guid).at(-1)
    return { watch, seen, until, last }
  })

/** Every user of both PBXs watched with PbxApi presence monitors, once each user's first reading (not in a call) arrived. */
const watchingEveryone = Effect.gen(function*() {
  const connector = yield* startConnector()
  const sim = yield* PbxSimulator.make(system(connector.url))
  yield* connector.waitStates(allLoggedIn(["pbx-master", "pbx-slave"]))
  const watching = yield* startWatch(connector, presenceProtocol("teams:"))
  yield* watching.watch.setUsers([...masterUsers, ...slaveUsers].map(watched))
  yield* watching.until((changes) => new Set(changes.map((c) => c.guid)).size === 4)
  return { ...watching, connector, sim }
})

describe("PBX → Teams: watching calls on the PBX", () => {
  it.live("each user is watched on its own PBX; the PBX's on-the-phone makes it in a call, its end not", () =>
    Effect.gen(function*() {
      const { connector, sim, watch, until, last } = yield* watchingEveryone
      assert.deepStrictEqual(
        sim.peek.watchLog().map((w) => `${w.pbx} ${w.guid}`).sort(),
        [...masterUsers.map((u) => `pbx-master ${u.guid}`), ...slaveUsers.map((u) => `pbx-slave ${u.guid}`)].sort()
      )
      const slave = slaveUsers[0]!
      const call = yield* sim.placeCall(slave.guid)
      yield* until((changes) => last(slave.guid)(changes)?.inCall === true)
      yield* sim.endCall(call)
      yield* until((changes) => last(slave.guid)(changes)?.inCall === false)
      assert.strictEqual((yield* watch.current).find((w) => w.user.guid === slave.guid)?.status, "live")
    }).pipe(Effect.scoped))

  it.live("the connector's own teams: on-the-phone, and a PBX that hides on-the-phone from the App, make nobody in a call", () =>
    Effect.gen(function*() {
      const hidden: SimUser = { ...makeUsers("h", 1, "pbx-master")[0]!, onThePhoneVisible: false }
      const connector = yield* startConnector()
      const sim = yield* PbxSimulator.make(system(connector.url, undefined, [hidden]))
      yield* connector.waitStates(allLoggedIn(["pbx-master", "pbx-slave"]))
      yield* connector.directory.ready
      const { watch, until, last, seen } = yield* startWatch(connector, presenceProtocol("teams:"))
      const [own, witness] = masterUsers
      yield* watch.setUsers([own!, witness!, hidden].map(watched))
      yield* until((changes) => new Set(changes.map((c) => c.guid)).size === 3)
      // A Teams call written by the connector under its own contact, and a call the App may not see.
      yield* connector.writer.write(own!.guid, setPresence("on-the-phone"))
      yield* sim.waitFor(() => sim.peek.presence(own!.guid).some((e) => e.contact === "teams:" && e.activity === "on-the-phone") || undefined)
      yield* sim.placeCall(hidden.guid)
      // The PBX answers in order on the master's connection: once the witness's call is seen, the others were too.
      yield* sim.placeCall(witness!.guid)
      yield* until((changes) => last(witness!.guid)(changes)?.inCall === true)
      const changes = yield* SubscriptionRef.get(seen)
      assert.deepStrictEqual(changes.filter((c) => c.inCall && c.guid !== witness!.guid), [])
    }).pipe(Effect.scoped))

  it.live("a dropped PBX's users are not in a call until it is back and they are watched again; a user who moves follows", () =>
    Effect.gen(function*() {
      const { connector, sim, watch, until, last } = yield* watchingEveryone
      const slave = slaveUsers[1]!
      yield* sim.placeCall(slave.guid)
      yield* until((changes) => last(slave.guid)(changes)?.inCall === true)
      const before = sim.peek.watchLog().filter((w) => w.guid === slave.guid).length
      yield* sim.drop("pbx-slave")
      yield* until((changes) => last(slave.guid)(changes)?.inCall === false)
      // Back: watched again on the new connection, and the call that still lasts is seen again.
      yield* until((changes) => last(slave.guid)(changes)?.inCall === true && changes.filter((c) => c.guid === slave.guid).length >= 3)
      assert.isAbove(sim.peek.watchLog().filter((w) => w.guid === slave.guid && w.pbx === "pbx-slave").length, before)

      // The user moves to the master: watched there from now on.
      const moved = masterUsers[0]!
      yield* watch.setUsers([...masterUsers.map((u) => u === moved ? { ...watched(u), loc: "pbx-slave" } : watched(u)), ...slaveUsers.map(watched)])
      yield* sim.waitFor(() => sim.peek.watchLog().some((w) => w.guid === moved.guid && w.pbx === "pbx-slave") || undefined)
      const call = yield* sim.placeCall(moved.guid)
      yield* until((changes) => last(moved.guid)(changes)?.inCall === true)
      yield* sim.endCall(call)
      yield* until((changes) => last(moved.guid)(changes)?.inCall === false)
    }).pipe(Effect.scoped))

  it.live("RCC without the App object's RCC checkmark is named; a user RCC does not know is refused", () =>
    Effect.gen(function*() {
      const stranger: SimUser = { ...makeUsers("x", 1, "pbx-master")[0]!, apps: ["users"] }
      const connector = yield* startConnector()
      const sim = yield* PbxSimulator.make({
        ...system(connector.url, ["PbxApi", "PbxTableUsers", "RCC"], [stranger]),
        pbxs: system(connector.url, ["PbxApi", "PbxTableUsers", "RCC"], [stranger]).pbxs.map((p) =>
          p.name === "pbx-slave" ? { ...p, apis: ["PbxApi", "PbxTableUsers"] } : p
        )
      })
      yield* connector.waitStates(allLoggedIn(["pbx-master", "pbx-slave"]))
      const { watch, until, last } = yield* startWatch(connector, rccProtocol({ ringing: false, hold: true }))
      yield* watch.setUsers([...masterUsers, ...slaveUsers, stranger].map(watched))
      yield* Stream.runHead(Stream.filter(SubscriptionRef.changes(watch.missingApi), (pbxs) => pbxs.includes("pbx-slave")))
      // A refusal is reported as "not in a call", like any answer.
      yield* until((changes) => changes.some((c) => c.guid === stranger.guid) && changes.some((c) => c.guid === slaveUsers[0]!.guid))
      const refused = yield* watch.current
      assert.match(refused.find((w) => w.user.guid === stranger.guid)?.reason ?? "", /no visible user/)
      assert.match(refused.find((w) => w.user.guid === slaveUsers[0]!.guid)?.reason ?? "", /does not enable RCC/)
      // The master's users are watched through RCC: connected counts, a held call still counts, its release ends it.
      const user = masterUsers[0]!
      yield* until((changes) => changes.some((c) => c.guid === user.guid))
      const call = yield* sim.placeCall(user.guid)
      yield* until((changes) => last(user.guid)(changes)?.inCall === true)
      yield* sim.endCall(call)
      yield* until((changes) => last(user.guid)(changes)?.inCall === false)
    }).pipe(Effect.scoped))
})
