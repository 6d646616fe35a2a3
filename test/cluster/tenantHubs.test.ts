/**
 * A runner's wake-ups reach the fibers of the tenant they name only (src/cluster/TenantHubs.ts): the desired
 * presences' NOTIFYs through DesiredWakeups over a real PostgreSQL, and the hubs themselves (a resync reaches every
 * tenant's subscribers, a tenant's hub goes with its last subscriber and comes back with the next).
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, PubSub, Redacted } from "effect"
import { DesiredWakeups } from "../../src/cluster/DesiredSender.ts"
import { makeTenantHubs } from "../../src/cluster/TenantHubs.ts"
import { setPresence } from "../../src/domain/PbxPresence.ts"
import { type DesiredWakeup, StateStore, TenantId } from "../../src/state/StateStore.ts"
import { keyEnv, newKey, openStore, withEnv } from "../state/fixtures.ts"
import { newSchemaUrl } from "../support/postgres.ts"

const alpha = TenantId.make("alpha")
const bravo = TenantId.make("bravo")

/** The next wake-up of `subscription` that is not a resync (a LISTEN's first one). */
const nextChange = (subscription: PubSub.Subscription<DesiredWakeup>) =>
  Effect.gen(function*() {
    while (true) {
      const wakeup = yield* PubSub.take(subscription)
      if (wakeup.kind === "changed") return wakeup
    }
  })

describe("the wake-ups of a runner, per tenant", () => {
  it.effect("a put's NOTIFY wakes the subscribers of its tenant only", () =>
    Effect.scoped(Effect.gen(function*() {
      const url = yield* Effect.promise(newSchemaUrl)
      const store = yield* openStore(StateStore.layerPostgres({ url: Redacted.make(url), maxConnections: 3 }).pipe(Layer.provide(withEnv(keyEnv(newKey())))))
      const wakeups = Context.get(yield* Layer.build(DesiredWakeups.layer(["runner-1"]).pipe(Layer.provide(Layer.succeed(StateStore, store)))), DesiredWakeups)
      const ofAlpha = yield* wakeups.subscribe(alpha)
      const ofBravo = yield* wakeups.subscribe(bravo)
      // Both LISTENs (every process's channel and runner-1's) in place before anything is put: each ends with a resync.
      for (let resyncs = 0; resyncs < 2;) if ((yield* PubSub.take(ofAlpha)).kind === "resync") resyncs++
      const alphaOwner = yield* store.owners.claim(alpha, "runner-1")
      const bravoOwner = yield* store.owners.claim(bravo, "runner-1")

      // Alpha's put first, then bravo's: the LISTEN hands them on in that order, so a subscription of bravo's that
      // were given alpha's wake-up would see it before bravo's own.
      yield* store.desired.put(alpha, alphaOwner.epoch, [{ pbx: "alpha-master", guid: "u1", command: setPresence("away") }])
      yield* store.desired.put(bravo, bravoOwner.epoch, [{ pbx: "bravo-master", guid: "u1", command: setPresence("dnd") }])
      const toAlpha = yield* nextChange(ofAlpha)
      const toBravo = yield* nextChange(ofBravo)
      assert.deepStrictEqual([toAlpha.tenant, toAlpha.pbx], [alpha, "alpha-master"])
      assert.deepStrictEqual([toBravo.tenant, toBravo.pbx], [bravo, "bravo-master"])

      // The owner's own wake-up of its runner's senders goes the same way.
      yield* wakeups.local(bravo, "bravo-slave")
      yield* wakeups.local(alpha, "alpha-slave")
      assert.strictEqual((yield* nextChange(ofAlpha)).pbx, "alpha-slave")
      assert.strictEqual((yield* nextChange(ofBravo)).pbx, "bravo-slave")
    })))

  it.effect("a resync reaches every tenant's subscribers; a tenant's hub goes with its last subscriber", () =>
    Effect.gen(function*() {
      const hubs = makeTenantHubs<string>(16)
      const first = yield* Effect.scoped(Effect.gen(function*() {
        const ofAlpha = yield* hubs.subscribe(alpha)
        const ofBravo = yield* hubs.subscribe(bravo)
        yield* hubs.publish(alpha, "a1")
        yield* hubs.publishAll("resync")
        yield* hubs.publish(bravo, "b1")
        return { alpha: yield* PubSub.takeAll(ofAlpha), bravo: yield* PubSub.takeAll(ofBravo) }
      }))
      assert.deepStrictEqual(first, { alpha: ["a1", "resync"], bravo: ["resync", "b1"] })

      // Nobody subscribes to alpha now: what is published for it is dropped, not kept for a later subscriber.
      yield* hubs.publish(alpha, "lost")
      const second = yield* Effect.scoped(Effect.gen(function*() {
        const ofAlpha = yield* hubs.subscribe(alpha)
        yield* hubs.publish(alpha, "a2")
        return yield* PubSub.takeAll(ofAlpha)
      }))
      assert.deepStrictEqual(second, ["a2"])
    }))
})
