/**
 * Graph notifications taken by a runner that does not serve the tenant (src/cluster/GraphHandoff.ts,
 * HandoffIntake.ts) on a real PostgreSQL: items are checked against the tenant's subscriptions in the store (wrong
 * clientState and unknown subscriptions never reach the owner), what passes is stored and answered 202, a body that is
 * not a notification collection is a 400; only the tenant's current owner epoch takes the rows, in order, and a
 * running drain is woken by the NOTIFY of a later put.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Layer, Redacted, Stream } from "effect"
import { makeGraphHandoff } from "../../src/cluster/GraphHandoff.ts"
import { makeHandoffIntake } from "../../src/cluster/HandoffIntake.ts"
import type { ChangeNotificationCollection, LifecycleNotificationCollection } from "../../src/graph/notifications/Notifications.ts"
import type { NotificationsInbox } from "../../src/graph/notifications/NotificationsInbox.ts"
import { StateStore } from "../../src/state/StateStore.ts"
import { newSchemaUrl } from "../support/postgres.ts"
import { keyEnv, newKey, openStore, subscriptionState, tenant, withEnv } from "../state/fixtures.ts"

const alpha = tenant("alpha")

/** An inbox that records what reaches it (the owner's connector; its own checks are tested in test/graph). */
const recordingInbox = () => {
  const changes: Array<ChangeNotificationCollection> = []
  const lifecycle: Array<LifecycleNotificationCollection> = []
  let arrived = Deferred.makeUnsafe<void>()
  const inbox = {
    register: () => Effect.void,
    unregister: () => Effect.void,
    expect: () => Effect.succeed(Effect.void),
    acceptNotifications: (body: ChangeNotificationCollection) =>
      Effect.sync(() => changes.push(body)).pipe(Effect.andThen(Deferred.succeed(arrived, undefined)), Effect.as(body.value.length)),
    acceptLifecycle: (body: LifecycleNotificationCollection) => Effect.sync(() => lifecycle.push(body)).pipe(Effect.as(body.value.length)),
    presences: Stream.empty,
    userChanges: Stream.empty,
    lifecycle: Stream.empty,
    refetch: Stream.empty
  } satisfies NotificationsInbox["Service"]
  return {
    inbox,
    changes,
    lifecycle,
    /** Waits for the next batch to arrive. */
    next: Effect.suspend(() => Deferred.await(arrived)).pipe(Effect.andThen(Effect.sync(() => { arrived = Deferred.makeUnsafe<void>() })))
  }
}

const setup = Effect.gen(function*() {
  const url = yield* Effect.promise(newSchemaUrl)
  const store = yield* openStore(StateStore.layerPostgres({ url: Redacted.make(url), maxConnections: 3 }).pipe(Layer.provide(withEnv(keyEnv(newKey())))))
  const sql = yield* Layer.build(Layer.fresh(PgClient.layer({ url: Redacted.make(url), maxConnections: 3 }))).pipe(
    Effect.map((context) => Context.get(context, PgClient.PgClient)),
    Effect.orDie
  )
  const { state } = subscriptionState()
  yield* store.subscriptions.save(alpha, state)
  const handoff = yield* makeGraphHandoff(sql)
  const intake = makeHandoffIntake(store, handoff, "1 minute")
  const presence = state.shards[0]!.subscription!
  const item = (n: number, clientState = Redacted.value(presence.clientState), subscriptionId = presence.subscriptionId) => ({
    subscriptionId,
    clientState,
    changeType: "updated",
    resource: `communications/presences/u${n}`,
    resourceData: { id: `u${n}` }
  })
  const rows = sql<{ n: string }>`SELECT count(*)::text AS n FROM connector_graph_handoff`.pipe(Effect.map((r) => Number(r[0]!.n)), Effect.orDie)
  return { store, handoff, intake, item, rows, users: state.users! }
})

describe("cluster: Graph notifications handed to the owner through the store", () => {
  it.live("only items of the tenant's subscriptions are stored, answered 202; a body that is not a collection is a 400", () =>
    Effect.scoped(Effect.gen(function*() {
      const { handoff, intake, item, rows, store } = yield* setup
      const answer = yield* intake.receive(alpha, "change", {
        value: [item(1), item(2, "a forged client state"), item(3, "x", "a subscription of someone else")],
        validationTokens: ["token-1"]
      })
      assert.deepStrictEqual(answer, { status: 202, text: "" })
      // Nothing but forged items: answered 202 as the connector does, and nothing stored.
      assert.strictEqual((yield* intake.receive(alpha, "change", { value: [item(4, "forged")] })).status, 202)
      assert.strictEqual(yield* rows, 1)
      assert.strictEqual((yield* intake.receive(alpha, "change", { items: [] })).status, 400)
      assert.strictEqual((yield* intake.receive(alpha, "lifecycle", { value: [{ subscriptionId: "s", lifecycleEvent: "bogus" }] })).status, 400)
      assert.strictEqual(yield* rows, 1)

      const owner = yield* store.owners.claim(alpha, "runner-a")
      const recorder = recordingInbox()
      // A former owner's epoch takes nothing.
      assert.strictEqual(yield* handoff.drainOnce(alpha, owner.epoch - 1, recorder.inbox), 0)
      assert.strictEqual(yield* rows, 1)
      assert.strictEqual(yield* handoff.drainOnce(alpha, owner.epoch, recorder.inbox), 1)
      assert.deepStrictEqual(recorder.changes.map((body) => body.value.map((i) => i.resourceData?.id)), [["u1"]])
      assert.deepStrictEqual(recorder.changes[0]!.validationTokens, ["token-1"])
      assert.strictEqual(yield* rows, 0)
    })))

  it.live("a running drain takes each later batch on its NOTIFY, in the order they were put; lifecycle items too", () =>
    Effect.scoped(Effect.gen(function*() {
      const { handoff, intake, item, rows, store, users } = yield* setup
      const owner = yield* store.owners.claim(alpha, "runner-a")
      const recorder = recordingInbox()
      yield* handoff.drain(alpha, owner.epoch, recorder.inbox)
      yield* intake.receive(alpha, "change", { value: [item(1)] })
      yield* recorder.next
      yield* intake.receive(alpha, "change", { value: [item(2)] })
      yield* recorder.next
      yield* intake.receive(alpha, "change", { value: [item(3)] })
      yield* recorder.next
      assert.deepStrictEqual(recorder.changes.map((body) => body.value[0]!.resourceData?.id), ["u1", "u2", "u3"])
      const lifecycle = { value: [{ subscriptionId: users.subscriptionId, clientState: Redacted.value(users.clientState), lifecycleEvent: "missed" as const }] }
      assert.strictEqual((yield* intake.receive(alpha, "lifecycle", lifecycle)).status, 202)
      yield* intake.receive(alpha, "change", { value: [item(4)] })
      yield* recorder.next
      assert.deepStrictEqual(recorder.lifecycle.map((body) => body.value[0]!.lifecycleEvent), ["missed"])
      assert.strictEqual(yield* rows, 0)
    })))
})
