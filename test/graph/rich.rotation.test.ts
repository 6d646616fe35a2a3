/**
 * Rotation of the rich-notification certificate over real sockets against the Graph simulator: the new certificate
 * PATCHed into the subscriptions, old-key items decrypted during the grace period and rejected after it, and the
 * expiry check rotating by itself.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Effect, Metric, SubscriptionRef } from "effect"
import { TestClock } from "effect/testing"
import { notificationsRejected } from "../../src/domain/Metrics.ts"
import { CertificateStore } from "../../src/graph/notifications/crypto/CertificateStore.ts"
import type { GraphSimulatorHandle } from "../../src/simulators/graph/GraphSimulator.ts"
import { firstWhere, record } from "../support/streams.ts"
import { fileState } from "../support/state.ts"
import { tempDir } from "../support/tempDir.ts"
import { control, ids, startPushed, stateWhere } from "./subscriptionsHarness.ts"

const DAY_MS = 24 * 3600 * 1000

const rejected = (reason: string) =>
  Metric.value(Metric.withAttributes(notificationsRejected, { reason })).pipe(Effect.map((state) => Number(state.count)))

/** The simulator's presence subscriptions with the certificate id each names. */
const simPresenceSubscriptions = (sim: GraphSimulatorHandle) =>
  Effect.promise(async () => {
    const view = (await (await fetch(`${sim.url}/_sim/subscriptions`)).json()) as {
      subscriptions: Array<{ id: string; kind: string; encryptionCertificateId: string }>
    }
    return view.subscriptions.filter((s) => s.kind === "presence").map((s) => ({ id: s.id, certificateId: s.encryptionCertificateId }))
  })

/** Simulator, webhook and manager with one account and `users` users subscribed and read once. */
const setup = (options: { readonly users: number; readonly graceMinutes: number; readonly checkMinutes?: number; readonly dataDir?: string }) =>
  Effect.gen(function*() {
    const { sim, webhook, source, manager } = yield* startPushed({
      users: options.users,
      accounts: 1,
      subscribe: options.users,
      ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}),
      settings: {
        certificateGraceMinutes: options.graceMinutes,
        ...(options.checkMinutes !== undefined ? { certificateCheckMinutes: options.checkMinutes } : {})
      }
    })
    const users = ids(options.users)
    yield* source.initialSync(users)
    const subscriptionId = (yield* SubscriptionRef.get(manager.state)).shards[0]!.subscriptionId!
    return { sim, store: Context.get(webhook.context, CertificateStore), source, manager, users, subscriptionId }
  })

const keyIds = (store: CertificateStore["Service"]) => store.keys.pipe(Effect.map((keys) => keys.map((k) => k.id)))

describe("rich-notification certificate rotation (real sockets)", () => {
  it.live("rotation PATCHes the new certificate into the subscription; a change sealed with the new key is applied", () =>
    Effect.gen(function*() {
      // No grace: the old key is gone as soon as nothing names it, so only the new key can decrypt what follows.
      const { manager, sim, source, store, subscriptionId, users } = yield* setup({ users: 3, graceMinutes: 0 })
      const old = yield* store.current
      assert.deepStrictEqual(yield* simPresenceSubscriptions(sim), [{ id: subscriptionId, certificateId: old.id }])

      yield* manager.rotateCertificate
      const next = yield* store.current
      assert.notStrictEqual(next.id, old.id)
      assert.deepStrictEqual(yield* simPresenceSubscriptions(sim), [{ id: subscriptionId, certificateId: next.id }])
      assert.deepStrictEqual(yield* keyIds(store), [next.id])
      const certificate = (yield* SubscriptionRef.get(manager.state)).certificate
      assert.strictEqual(certificate?.currentId, next.id)
      assert.deepStrictEqual(certificate?.previous, [])
      assert.isDefined(certificate?.lastRotationAt)

      const pushed = yield* firstWhere(source.changes, (c) => c.userId === users[1] && c.origin === "push")
      const decryptFailures = yield* rejected("decrypt")
      yield* sim.setPresence(users[1]!, { availability: "Busy", activity: "InACall" })
      const change = yield* pushed
      assert.strictEqual(change.presence.activity, "InACall")
      assert.strictEqual(change.presence.availability, "Busy")
      assert.strictEqual(yield* rejected("decrypt"), decryptFailures)
    }).pipe(Effect.scoped))

  it.effect("an item sealed with the old key is decrypted during the grace period and rejected and counted after it", () =>
    Effect.gen(function*() {
      // On this test's clock (set to the real time), so the grace period ends when the test moves it on.
      yield* TestClock.setTime(Date.now())
      const { manager, sim, source, store, subscriptionId, users } = yield* setup({ users: 3, graceMinutes: 0.05 })
      // Deliveries happen only through the control API from here on, so each item is sealed as the test says.
      assert.strictEqual((yield* control(sim, `/${subscriptionId}/silence`, { silent: true })).status, 200)
      const old = yield* store.current
      yield* manager.rotateCertificate
      const next = yield* store.current
      const during = (yield* SubscriptionRef.get(manager.state)).certificate
      assert.strictEqual(during?.previous.length, 1)
      assert.strictEqual(during?.previous[0]?.id, old.id)
      assert.isDefined(during?.previous[0]?.retireAt)
      assert.deepStrictEqual(yield* keyIds(store), [next.id, old.id])
      const sealedWithOld = { encryptionCertificate: old.certificate, encryptionCertificateId: old.id }

      // (b) a retry sealed before the rotation, arriving after it, inside the grace period
      const late = yield* firstWhere(source.changes, (c) => c.userId === users[0] && c.origin === "push")
      yield* sim.setPresence(users[0]!, { availability: "Away", activity: "BeRightBack" })
      const delivered = yield* control(sim, `/${subscriptionId}/deliver`, { items: [{ userId: users[0], ...sealedWithOld }] })
      assert.deepStrictEqual(delivered, { status: 200, body: { id: subscriptionId, items: 1, delivered: true } })
      assert.strictEqual((yield* late).presence.activity, "BeRightBack")

      // (c) once the grace period (3 s) has passed the old key is retired
      yield* TestClock.adjust("3 seconds")
      yield* stateWhere(manager.state, (s) => s.certificate?.previous.length === 0)
      assert.deepStrictEqual(yield* keyIds(store), [next.id])
      assert.deepStrictEqual(yield* simPresenceSubscriptions(sim), [{ id: subscriptionId, certificateId: next.id }])

      // ... and an item naming it is rejected and counted, never applied, while one with the new key in the same POST is
      const applied = yield* record(source.changes)
      const fresh = yield* firstWhere(source.changes, (c) => c.userId === users[1] && c.origin === "push")
      const decryptFailures = yield* rejected("decrypt")
      yield* sim.setPresence(users[0]!, { availability: "DoNotDisturb", activity: "Presenting" })
      yield* sim.setPresence(users[1]!, { availability: "Busy", activity: "InAMeeting" })
      const mixed = yield* control(sim, `/${subscriptionId}/deliver`, {
        items: [{ userId: users[0], ...sealedWithOld }, { userId: users[1] }]
      })
      assert.strictEqual(mixed.status, 200)
      // Both items are in one batch, processed in order: when the second is applied the first has been judged.
      assert.strictEqual((yield* fresh).presence.activity, "InAMeeting")
      assert.strictEqual(yield* rejected("decrypt"), decryptFailures + 1)
      assert.isFalse(applied.some((c) => c.userId === users[0] && c.presence.activity === "Presenting"))
    }).pipe(Effect.scoped))

  it.effect("the expiry check rotates a certificate that expires within the window and PATCHes the subscription", () =>
    Effect.gen(function*() {
      // The simulator and the connector run on this test's clock, set to the real time so that certificates and
      // tokens carry real dates; only the checks' timers wait for it to be moved on.
      yield* TestClock.setTime(Date.now())
      const dataDir = yield* tempDir
      // A certificate that enters the 30-day window two minutes from now; new ones get the default lifetime.
      const short = yield* CertificateStore.make({ lifetimeMillis: 30 * DAY_MS + 2 * 60_000 }).pipe(Effect.provide(fileState(dataDir)))
      const first = yield* short.current
      const { manager, sim, store, subscriptionId } = yield* setup({ users: 2, graceMinutes: 0, checkMinutes: 1, dataDir })
      assert.strictEqual((yield* store.current).id, first.id)
      assert.deepStrictEqual(yield* simPresenceSubscriptions(sim), [{ id: subscriptionId, certificateId: first.id }])

      // The check a minute from now finds it outside the window, the one two minutes from now rotates it.
      yield* TestClock.adjust("1 minute")
      yield* TestClock.adjust("1 minute")
      yield* stateWhere(manager.state, (s) => s.certificate !== undefined && s.certificate.currentId !== first.id)
      const next = yield* store.current
      assert.isAbove(next.notAfter, (yield* Clock.currentTimeMillis) + 700 * DAY_MS)
      assert.deepStrictEqual(yield* simPresenceSubscriptions(sim), [{ id: subscriptionId, certificateId: next.id }])
      yield* stateWhere(manager.state, (s) => s.certificate?.previous.length === 0)
      assert.deepStrictEqual(yield* keyIds(store), [next.id])
    }).pipe(Effect.scoped))
})
