/**
 * Graph notifications taken by a runner that does not serve the tenant (src/cluster/GraphHandoff.ts,
 * HandoffIntake.ts) on a real PostgreSQL: items are checked against the tenant's subscriptions in the store (wrong
 * clientState and unknown subscriptions never reach the owner), what passes is stored and answered 202, a body that is
 * not a notification collection is a 400; only the tenant's current owner epoch takes the rows, in order, a
 * running drain is woken by the NOTIFY of a later put, and a row whose NOTIFY never came is found by the runner's look
 * every 5 s — one look for all its tenants, which wakes only the drain of a tenant with rows.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Layer, Redacted, Stream } from "effect"
import { TestClock } from "effect/testing"
import { makeGraphHandoff } from "../../src/cluster/GraphHandoff.ts"
import { makeHandoffIntake } from "../../src/cluster/HandoffIntake.ts"
import type { ChangeNotificationCollection, LifecycleNotificationCollection } from "../../src/graph/notifications/Notifications.ts"
import type { NotificationsInbox } from "../../src/graph/notifications/NotificationsInbox.ts"
import { StateStore } from "../../src/state/StateStore.ts"
import { awaitListening, newSchemaUrl } from "../support/postgres.ts"
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
    consumePresences: () => Effect.void,
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

  it.effect("a row without its NOTIFY is found by the runner's one look every 5 s, which wakes only its tenant's drain", () =>
    Effect.scoped(Effect.gen(function*() {
      const url = yield* Effect.promise(newSchemaUrl)
      const store = yield* openStore(StateStore.layerPostgres({ url: Redacted.make(url), maxConnections: 3 }).pipe(Layer.provide(withEnv(keyEnv(newKey())))))
      const sql = yield* Layer.build(Layer.fresh(PgClient.layer({ url: Redacted.make(url), maxConnections: 3 }))).pipe(
        Effect.map((context) => Context.get(context, PgClient.PgClient)),
        Effect.orDie
      )
      // Every take (DELETE) the handoff makes, by tenant (one per pass of a drain); `done` once every tenant's
      // first take has finished.
      const takes = new Map<string, number>()
      const finished = new Set<string>()
      const firstPasses = Deferred.makeUnsafe<void>()
      const tenants = ["alpha", "bravo", "charlie", "delta", "echo"].map(tenant)
      const counted = new Proxy(sql, {
        apply: (target, self, args: Array<unknown>) => {
          const statement = Reflect.apply(target, self, args)
          const text = Array.isArray(args[0]) ? args[0].join("?") : ""
          if (!text.includes("DELETE FROM connector_graph_handoff WHERE id IN")) return statement
          const of = String(args[1])
          takes.set(of, (takes.get(of) ?? 0) + 1)
          return Effect.ensuring(statement, Effect.sync(() => {
            finished.add(of)
            if (tenants.every((t) => finished.has(t))) Deferred.doneUnsafe(firstPasses, Effect.void)
          }))
        }
      })
      const handoff = yield* makeGraphHandoff(counted)
      // The LISTEN in place (its session opens apart from the pool, after a connect), then up once a put's NOTIFY has
      // woken a drain: its resync (a pass of every drain) is over.
      yield* awaitListening(url, "connector_graph_handoff")
      const zulu = tenant("zulu")
      const listening = recordingInbox()
      yield* handoff.drain(zulu, (yield* store.owners.claim(zulu, "runner-a")).epoch, listening.inbox)
      yield* handoff.put(zulu, "change", { value: [] }).pipe(Effect.orDie)
      yield* listening.next
      const recorders = new Map(tenants.map((t) => [t, recordingInbox()]))
      for (const t of tenants) yield* handoff.drain(t, (yield* store.owners.claim(t, "runner-a")).epoch, recorders.get(t)!.inbox)
      yield* Deferred.await(firstPasses)
      takes.clear()

      // A row of alpha's as a runner that died between its INSERT's commit and the NOTIFY would leave it: no wake-up.
      const body = { value: [{ subscriptionId: "s1", clientState: "c1", changeType: "updated", resource: "communications/presences/u9", resourceData: { id: "u9" } }] }
      yield* sql`INSERT INTO connector_graph_handoff (tenant_id, kind, body) VALUES (${alpha}, 'change', ${sql.json(body)})`.pipe(Effect.orDie)
      yield* TestClock.adjust("5 seconds")
      yield* recorders.get(alpha)!.next
      assert.deepStrictEqual(recorders.get(alpha)!.changes.map((b) => b.value[0]!.resourceData?.id), ["u9"])
      // Only alpha's drain took (one DELETE), where a look per tenant made one for each of the five.
      assert.deepStrictEqual([...takes], [[alpha, 1]])
      for (const t of tenants.slice(1)) assert.strictEqual(recorders.get(t)!.changes.length, 0)
    })))
})
