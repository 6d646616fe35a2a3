/**
 * One tenant's Graph answering 503 for 5 minutes leaves the other tenants of the process green (issue 14), over real
 * sockets: `run`'s tenants behind one public port, each with its own Graph simulator and PBX system.
 *
 * How 5 minutes are kept out of the test's run time: the failing tenant — its connector and its Graph simulator —
 * runs on a clock of its own (test/support/warpClock.ts) that goes 20 times as fast from the outage's start until the
 * tenant has recovered. Everything that decides what the connector does in an outage runs on that clock: the Graph
 * client's backoff between retries, the subscription renewals and look-ups, the reconciler and the read retry's
 * doubling delays, the "red after five minutes" of failing reads, and the simulator's own expiry times. So the outage
 * covers exactly the 5 minutes of the connector's own time, with every retry it would make in them answered 503 (the
 * simulator's fault injection, on for every Graph request until the 5 minutes have passed on that clock), in about
 * 15 s. Not a TestClock: the other tenants and the simulators must keep running in real time over their sockets (a
 * TestClock would stop every timer in the process until the test moves it); not durations shortened by a setting:
 * then the outage and the connector's schedule would be scaled by two different hands and could drift apart.
 * The failing tenant renews its presence subscription every 2 minutes (`timers.presenceRenewMinutes`), so that the
 * 5 minutes surely hold a renewal (with the default 10 minutes, whether one falls in a given 5 minutes is chance).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeWarpClock } from "../support/warpClock.ts"
import { deliver, freePort, lightsOf, lightsOnceServed, runAll, served as serve, simulatedTenant, tenantIds, until } from "./tenantsHarness.ts"

const count = 4
const speed = 20
const outageMillis = 5 * 60_000

const states = [
  { availability: "Busy", activity: "InAMeeting", pbx: "meeting" },
  { availability: "Away", activity: "Away", pbx: "away" },
  { availability: "DoNotDisturb", activity: "DoNotDisturb", pbx: "dnd" }
] as const

const allGreen = (lights: Readonly<Record<string, { readonly state: string }>> | undefined) =>
  lights !== undefined && Object.values(lights).every((l) => l.state === "green")

describe("tenants in one process: one tenant's Graph down", () => {
  it.live("its Graph answering 503 for 5 minutes: it shows red with the reason, the others stay green and deliver, it recovers", () =>
    Effect.scoped(Effect.gen(function*() {
      const port = yield* freePort
      const warp = makeWarpClock()
      const failingId = "t3"
      const tenants = yield* Effect.forEach(tenantIds(count), (id) =>
        simulatedTenant(id, port, id === failingId ? { clock: warp.clock, extra: { timers: { presenceRenewMinutes: 2 } } } : {}))
      yield* runAll(port, tenants)
      const served = yield* Effect.forEach(tenants, (tenant) => serve(tenant, port))
      const failing = served.find((s) => s.tenant.id === failingId)!
      const others = served.filter((s) => s !== failing)
      for (const s of served) {
        yield* until(`${s.tenant.id} green`, Effect.map(lightsOnceServed(port, s.tenant.prefix), (lights) => (allGreen(lights) ? true : undefined)), 60_000)
        yield* deliver(s, states[0])
      }

      // The outage: every Graph request of the failing tenant answered 503 until 5 minutes have passed on its clock.
      const realStart = Date.now()
      warp.setSpeed(speed)
      const outageStart = warp.clock.currentTimeMillisUnsafe()
      yield* failing.tenant.graph.faults.serverErrors(Number.MAX_SAFE_INTEGER, 503)
      const red = yield* until("the failing tenant red", Effect.map(lightsOf(port, failing.tenant.prefix), (lights) => {
        const light = Object.entries(lights).find(([, l]) => l.state === "red")
        return light === undefined ? undefined : { name: light[0], reason: light[1].reason }
      }), outageMillis / speed)
      assert.strictEqual(red.name, "presenceSubscription")
      assert.match(red.reason, /503|unavailable/i, `the red light's reason names the outage: ${red.reason}`)
      assert.isBelow(warp.clock.currentTimeMillisUnsafe() - outageStart, outageMillis, "red within the outage")

      // Meanwhile the others stay green and deliver new presences, round after round, until the 5 minutes are over.
      let round = 1
      while (warp.clock.currentTimeMillisUnsafe() - outageStart < outageMillis) {
        const state = states[round % states.length]!
        for (const s of others) {
          yield* deliver(s, state)
          const lights = yield* lightsOf(port, s.tenant.prefix)
          assert.isTrue(allGreen(lights), `${s.tenant.id} during the outage: ${JSON.stringify(lights)}`)
        }
        round++
      }
      const stillRed = yield* lightsOf(port, failing.tenant.prefix)
      assert.strictEqual(stillRed["presenceSubscription"]?.state, "red", "red until the outage ends")
      assert.isAbove(round, 1)
      yield* failing.tenant.graph.faults.serverErrors(0)

      // After the outage: green again on its own (its next renewal and read retry), and its presences flow again.
      yield* until("the failing tenant green again", Effect.map(lightsOnceServed(port, failing.tenant.prefix), (lights) => (allGreen(lights) ? true : undefined)), 60_000)
      yield* deliver(failing, states[1])
      warp.setSpeed(1)
      for (const s of others) assert.isTrue(allGreen(yield* lightsOf(port, s.tenant.prefix)), `${s.tenant.id} after the outage`)
      console.log(`outage: ${outageMillis / 60_000} min on the failing tenant's clock in ${((Date.now() - realStart) / 1000).toFixed(1)} s, ` +
        `${round - 1} delivery rounds at each other tenant meanwhile; red: ${red.reason}`)
    })), 180_000)
})
