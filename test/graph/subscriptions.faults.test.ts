import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Metric, Stream } from "effect"
import { notificationsRejected } from "../../src/domain/Metrics.ts"
import { NotificationsInbox, type UserChange } from "../../src/graph/notifications/NotificationsInbox.ts"
import type { PresenceChange } from "../../src/graph/presence/PresenceSource.ts"
import { collect } from "../support/streams.ts"
import { control, ids, startPushed } from "./subscriptionsHarness.ts"

const stale = Metric.value(Metric.withAttributes(notificationsRejected, { reason: "stale" })).pipe(Effect.map((s) => Number(s.count)))

describe("simulator delivery faults (real sockets)", () => {
  it.live("duplicated and reordered notifications never overwrite a newer presence", () =>
    Effect.gen(function*() {
      const { sim, source } = yield* startPushed({ users: 2, accounts: 1, subscribe: 2, delivery: { batchWindowMillis: 100 } })
      const [alice, bob] = ids(2) as [string, string]
      yield* source.initialSync([alice, bob])
      const staleBefore = yield* stale

      // duplicate: the same item twice in one POST; only one change comes out
      assert.strictEqual((yield* control(sim, "/faults", { duplicate: 1 })).status, 200)
      const first = yield* collect(source.changes.pipe(Stream.filter((c) => c.origin === "push")), 1)
      yield* sim.setPresence(alice, { availability: "Busy", activity: "InACall" })
      assert.deepStrictEqual((yield* first).map((c) => c.presence.activity), ["InACall"])

      // reorder: two changes of bob in one POST, newest first; the older one is dropped as stale
      assert.strictEqual((yield* control(sim, "/faults", { reorder: 1 })).status, 200)
      const bobs = yield* collect(source.changes.pipe(Stream.filter((c: PresenceChange) => c.userId === bob)), 1)
      yield* sim.setPresence(bob, { availability: "Away", activity: "Away" })
      yield* sim.setPresence(bob, { availability: "DoNotDisturb", activity: "Presenting" })
      assert.deepStrictEqual((yield* bobs).map((c) => c.presence.activity), ["Presenting"])
      // a marker change afterwards proves nothing else for bob was applied in between
      const marker = yield* collect(source.changes.pipe(Stream.filter((c: PresenceChange) => c.userId === bob)), 1)
      yield* sim.setPresence(bob, { availability: "Available", activity: "Available" })
      assert.deepStrictEqual((yield* marker).map((c) => c.presence.activity), ["Available"])
      assert.strictEqual((yield* stale) - staleBefore, 2)
    }).pipe(Effect.scoped))

  it.live("user changes arrive through the users subscription as basic notifications", () =>
    Effect.gen(function*() {
      const { sim, webhook } = yield* startPushed({ users: 2, accounts: 1, subscribe: 2 })
      const inbox = Context.get(webhook.context, NotificationsInbox)
      const changes = yield* collect<UserChange>(inbox.userChanges, 2)
      yield* sim.updateUser(ids(2)[0]!, { displayName: "Renamed" })
      yield* sim.removeUser(ids(2)[1]!)
      assert.deepStrictEqual(yield* changes, [
        { userId: ids(2)[0]!, changeType: "updated" },
        { userId: ids(2)[1]!, changeType: "deleted" }
      ])
    }).pipe(Effect.scoped))
})
