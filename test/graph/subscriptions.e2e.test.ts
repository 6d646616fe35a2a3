import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, SubscriptionRef } from "effect"
import { collect, firstWhere } from "../support/streams.ts"
import { tempDir } from "../support/tempDir.ts"
import { control, firstRunThenStop, ids, simSubscriptions, startConnector, startPushed, startSimulator, startWebhook, stateWhere } from "./subscriptionsHarness.ts"

describe("subscriptions against the Graph simulator (real sockets)", () => {
  it.live("a presence change arrives pushed, decrypted and typed", () =>
    Effect.gen(function*() {
      const { sim, source, manager } = yield* startPushed({ users: 5, accounts: 1, subscribe: 5 })
      const users = ids(5)
      const state = yield* SubscriptionRef.get(manager.state)
      assert.deepStrictEqual(state.shards.map((s) => [s.key, s.userCount, s.status]), [["tech1", 5, "active"]])
      assert.strictEqual(state.users.status, "active")
      yield* source.initialSync(users)

      const pushed = yield* firstWhere(source.changes, (c) => c.userId === users[0])
      yield* sim.setPresence(users[0]!, { availability: "Busy", activity: "InACall" })
      const change = yield* pushed
      assert.strictEqual(change.origin, "push")
      assert.strictEqual(change.presence.activity, "InACall")
      assert.strictEqual(change.presence.availability, "Busy")
    }).pipe(Effect.scoped))

  it.live("Graph silently stops delivering: the reconciler corrects the presence within one interval", () =>
    Effect.gen(function*() {
      const { sim, source, manager } = yield* startPushed({ users: 3, accounts: 1, subscribe: 3, settings: { reconcileMinutes: 0.02 } })
      const users = ids(3)
      yield* source.initialSync(users)
      const subscriptionId = (yield* SubscriptionRef.get(manager.state)).shards[0]!.subscriptionId!
      assert.strictEqual((yield* control(sim, `/${subscriptionId}/silence`, { silent: true })).status, 200)
      const corrected = yield* firstWhere(source.changes, (c) => c.userId === users[1])
      yield* sim.setPresence(users[1]!, { availability: "DoNotDisturb", activity: "Presenting" })
      const change = yield* corrected
      assert.strictEqual(change.origin, "reconcile")
      assert.strictEqual(change.presence.activity, "Presenting")
    }).pipe(Effect.scoped))

  it.live("1,300 users make 2 shards on 2 accounts; more users make an account-less shard that needs another account", () =>
    Effect.gen(function*() {
      const { sim, manager } = yield* startPushed({ users: 1_400, accounts: 2, subscribe: 1_300 })
      const first = yield* SubscriptionRef.get(manager.state)
      assert.deepStrictEqual(first.shards.map((s) => [s.key, s.userCount, s.status]), [["tech1", 650, "active"], ["tech2", 650, "active"]])
      const view = yield* simSubscriptions(sim)
      assert.deepStrictEqual(view.subscriptions.filter((s) => s.kind === "presence").map((s) => s.userCount), [650, 650])
      assert.strictEqual(new Set(view.subscriptions.filter((s) => s.kind === "presence").map((s) => s.creatorId)).size, 2)

      yield* manager.setDesiredUsers(ids(1_400))
      const second = yield* SubscriptionRef.get(manager.state)
      assert.deepStrictEqual(second.shards.map((s) => [s.key, s.userCount, s.status]), [
        ["tech1", 650, "active"],
        ["tech2", 650, "active"],
        ["needs-account-0", 100, "needsAccount"]
      ])
      assert.match(second.shards[2]!.error ?? "", /need another technical account/)
      // the full shards were not touched
      assert.deepStrictEqual(second.shards.slice(0, 2).map((s) => s.subscriptionId), first.shards.map((s) => s.subscriptionId))
      assert.strictEqual((yield* simSubscriptions(sim)).counters.created, 3)
    }).pipe(Effect.scoped))

  it.live("a restart adopts the persisted subscriptions instead of creating new ones", () =>
    Effect.gen(function*() {
      const { sim, webhook, state: before } = yield* firstRunThenStop(3)
      assert.strictEqual((yield* simSubscriptions(sim)).counters.created, 2)

      const second = yield* startConnector(sim, webhook, { accounts: 1 })
      yield* second.manager!.setDesiredUsers(ids(3))
      const after = yield* SubscriptionRef.get(second.manager!.state)
      assert.strictEqual(after.shards[0]!.subscriptionId, before.shards[0]!.subscriptionId)
      assert.strictEqual(after.users.subscriptionId, before.users.subscriptionId)
      const view = yield* simSubscriptions(sim)
      assert.strictEqual(view.counters.created, 2)
      assert.strictEqual(view.counters.live, 2)

      // and the adopted subscription still delivers
      const pushed = yield* firstWhere(second.source.changes, (c) => c.origin === "push")
      yield* second.source.initialSync(ids(3))
      yield* sim.setPresence(ids(3)[2]!, { availability: "Away", activity: "BeRightBack" })
      assert.strictEqual((yield* pushed).presence.activity, "BeRightBack")
    }).pipe(Effect.scoped))

  it.live("subscriptionRemoved from Graph: the shard is recreated and resynced", () =>
    Effect.gen(function*() {
      const { sim, manager } = yield* startPushed({ users: 2, accounts: 1, subscribe: 2 })
      const before = (yield* SubscriptionRef.get(manager.state)).shards[0]!.subscriptionId!
      const recreated = yield* stateWhere(manager.state, (s) => s.shards[0]?.subscriptionId !== undefined && s.shards[0]?.subscriptionId !== before && s.shards[0]?.status === "active").pipe(Effect.forkScoped)
      const resynced = yield* firstWhere(manager.resyncs, () => true)
      assert.strictEqual((yield* control(sim, `/${before}/lifecycle`, { event: "subscriptionRemoved" })).status, 200)
      const state = yield* Fiber.join(recreated)
      assert.strictEqual(state?.shards[0]?.userCount, 2)
      assert.deepStrictEqual([...(yield* resynced)].sort(), [...ids(2)].sort())
      assert.strictEqual((yield* simSubscriptions(sim)).counters.live, 2)
    }).pipe(Effect.scoped))

  it.live("an expired subscription is recreated at the next renewal; reauthorizationRequired is reauthorized and renewed", () =>
    Effect.gen(function*() {
      const { sim, manager } = yield* startPushed({ users: 2, accounts: 1, subscribe: 2 })
      const first = (yield* SubscriptionRef.get(manager.state)).shards[0]!
      assert.strictEqual((yield* control(sim, `/${first.subscriptionId}/expire`)).status, 200)
      yield* manager.renewPresence
      const second = (yield* SubscriptionRef.get(manager.state)).shards[0]!
      assert.strictEqual(second.status, "active")
      assert.notStrictEqual(second.subscriptionId, first.subscriptionId)
      assert.strictEqual((yield* simSubscriptions(sim)).subscriptions.filter((s) => s.kind === "presence").length, 1)

      // the next state published after the lifecycle event (the first emission is the current state)
      const handled = yield* collect(SubscriptionRef.changes(manager.state), 2)
      const patchesBefore = (yield* sim.counters).requestsByRoute["PATCH /subscriptions/{id}"] ?? 0
      const sent = yield* control(sim, `/${second.subscriptionId}/lifecycle`, { event: "reauthorizationRequired" })
      assert.deepStrictEqual(sent.body, { id: second.subscriptionId, event: "reauthorizationRequired", sent: true })
      const after = (yield* handled)[1]
      assert.strictEqual(after?.shards[0]?.subscriptionId, second.subscriptionId)
      const counters = (yield* sim.counters).requestsByRoute
      assert.strictEqual(counters["POST /subscriptions/{id}/reauthorize"], 1)
      assert.strictEqual((counters["PATCH /subscriptions/{id}"] ?? 0) - patchesBefore, 1)
    }).pipe(Effect.scoped))

  it.live("poll-only mode: no subscriptions, presence read every pollSeconds", () =>
    Effect.gen(function*() {
      const sim = yield* startSimulator({ users: 3, accounts: 0 })
      const webhook = yield* startWebhook(sim, yield* tempDir)
      const { source, manager } = yield* startConnector(sim, webhook, { accounts: 0, mode: "poll", pollSeconds: 0.2 })
      assert.isUndefined(manager)
      const initial = yield* firstWhere(source.changes, (c) => c.origin === "initial")
      yield* source.initialSync(ids(3))
      assert.strictEqual((yield* initial).presence.activity, "Offline")
      const polled = yield* firstWhere(source.changes, (c) => c.userId === ids(3)[1] && c.origin === "poll")
      yield* sim.setPresence(ids(3)[1]!, { availability: "Busy", activity: "InAMeeting" })
      assert.strictEqual((yield* polled).presence.activity, "InAMeeting")
      assert.strictEqual((yield* simSubscriptions(sim)).counters.created, 0)
    }).pipe(Effect.scoped))
})
