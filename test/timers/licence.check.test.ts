/**
 * The licence check before every presence subscription (src/connector/LicenceCheckFromPbx.ts), under TestClock: it runs
 * right before each creation and renewal, a user whose licence was withdrawn leaves the subscription at the next
 * renewal, and comes back when the licence does. Graph is faked below the real GraphClient.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, SubscriptionRef } from "effect"
import { TestClock } from "effect/testing"
import { LicenceCheckFromPbx } from "../../src/connector/LicenceCheckFromPbx.ts"
import { makePlan, matchForPlan } from "../../src/connector/Plan.ts"
import { PlanState } from "../../src/connector/PlanState.ts"
import { SubscriptionManager } from "../../src/graph/subscriptions/SubscriptionManager.ts"
import { type LicencePass, Licences } from "../../src/pbx/directory/Licences.ts"
import type { PbxUser } from "../../src/pbx/directory/PbxDirectory.ts"
import { tempDir } from "../support/tempDir.ts"
import { makeFakeGraph, minuteOf } from "./fakeGraph.ts"
import { buildManager, teamsUser } from "./managerHarness.ts"

const pbxUser = (n: number): PbxUser => ({
  guid: `guid-${n}`,
  h323: `user${n}`,
  cn: `User ${n}`,
  dn: `User ${n}`,
  e164: `10${n}`,
  emails: [`user${n}@contoso.com`],
  loc: "master",
  node: "root",
  apps: ["presence"],
  hide: false
})

const licencePass = (users: ReadonlyArray<PbxUser>, licensed: ReadonlySet<string>): LicencePass => ({
  verdicts: new Map(users.map((u) => [u.guid, licensed.has(u.guid) ? { _tag: "Licensed" } : { _tag: "Unlicensed", reason: "licence withdrawn" }])),
  summary: { mode: "appRight", name: "presence" }
})

describe("the licence check before presence subscriptions (TestClock, fake Graph)", () => {
  it.effect("the licence check runs right before every presence creation and renewal; an unlicensed user is left out", () =>
    Effect.gen(function*() {
      const fake = makeFakeGraph({ tokenLifetimeSeconds: 3600 })
      const dataDir = yield* tempDir
      const teams = [1, 2, 3].map(teamsUser)
      const pbx = [1, 2, 3].map(pbxUser)
      let licensed: ReadonlySet<string> = new Set(pbx.map((u) => u.guid))
      const licences = Layer.succeed(Licences, Licences.of({
        mode: "appRight",
        assess: (users) => fake.licenceCalled.pipe(Effect.map(() => licencePass(users, licensed)))
      }))
      const planState = yield* Layer.build(PlanState.layer)
      const state = Context.get(planState, PlanState)
      yield* SubscriptionRef.set(
        state.plan,
        makePlan({
          match: matchForPlan({ teamsUsers: teams, pbxUsers: pbx, strategy: { _tag: "email" } }),
          ...licencePass(pbx, licensed),
          licensing: { mode: "appRight", name: "presence" }
        })
      )
      const licenceCheck = LicenceCheckFromPbx.pipe(Layer.provide(licences), Layer.provide(Layer.succeedContext(planState)))
      const context = yield* buildManager(fake, ["tech1"], dataDir, licenceCheck)
      const manager = Context.get(context, SubscriptionManager)
      yield* manager.setDesiredUsers(teams.map((u) => u.id))

      const step = Effect.fnUntraced(function*(minutes: number, callsAfter: number) {
        yield* TestClock.adjust(`${minutes} minutes`)
        yield* fake.until(() => fake.graphCalls().length >= callsAfter)
      })
      yield* step(10, 3)
      yield* step(10, 4)
      yield* step(5, 4)
      licensed = new Set(["guid-1", "guid-3"]) // user 2's PBX licence is withdrawn at minute 25
      yield* step(5, 6)
      yield* step(10, 7)
      yield* step(5, 7)
      licensed = new Set(pbx.map((u) => u.guid)) // and given back at minute 45
      yield* step(5, 9)

      const line = (entry: (typeof fake.log)[number]) =>
        entry.kind === "licence" ? `${minuteOf(entry.at)} licence` : `${minuteOf(entry.at)} ${entry.method} ${entry.subscription}`
      assert.deepStrictEqual(fake.log.map(line), [
        "0 POST users",
        "0 licence",
        "0 POST presence",
        "10 licence",
        "10 PATCH presence",
        "20 licence",
        "20 PATCH presence",
        // minute 30: the check finds user 2 unlicensed, the subscription is replaced by one without them
        "30 licence",
        "30 DELETE presence",
        "30 POST presence",
        "40 licence",
        "40 PATCH presence",
        // minute 50: the licence is back, the subscription is replaced by one with all three
        "50 licence",
        "50 DELETE presence",
        "50 POST presence"
      ])
      // Every create or renewal follows a licence check made after the previous create or renewal (a DELETE between
      // the check and the create it decided is fine).
      const writes = (entry: (typeof fake.log)[number]) =>
        entry.kind === "graph" && entry.subscription === "presence" && (entry.method === "POST" || entry.method === "PATCH")
      fake.log.forEach((entry, i) => {
        if (!writes(entry)) return
        const before = fake.log.slice(0, i).filter((e) => e.kind === "licence" || writes(e))
        assert.strictEqual(before[before.length - 1]?.kind, "licence", `${line(entry)} is preceded by a licence check`)
      })
      const resources = fake.graphCalls().filter((c) => c.subscription === "presence" && c.method === "POST").map((c) => c.resource)
      const ids = (resource: string | undefined) => [...(resource ?? "").matchAll(/'([^']+)'/g)].map((m) => m[1])
      assert.deepStrictEqual(ids(resources[0]), teams.map((u) => u.id))
      assert.deepStrictEqual(ids(resources[1]), [teams[0]!.id, teams[2]!.id], "user 2 is left out after the licence is withdrawn")
      assert.deepStrictEqual(ids(resources[2]), teams.map((u) => u.id))
      const shard = (yield* SubscriptionRef.get(manager.state)).shards[0]!
      assert.strictEqual(shard.status, "active")
      assert.strictEqual(shard.userCount, 3)
    }).pipe(Effect.scoped))
})
