/**
 * One typed stream of Teams presence changes, whichever mode runs: push (rich notifications, plus a reconciler that
 * re-reads every presence each `reconcileMinutes` and after every resync event) or poll-only (every `pollSeconds`
 * with the application credential). Only differences from the last known presence per user are emitted, and an
 * update older than the one applied (by sequenceNumber) never overwrites it.
 *
 * The user set: `initialSync(userIds)` sets it and reads everything once; `setUsers(userIds)` changes it later
 * (new users are read at once). Subscribe to `changes` before calling `initialSync`.
 */
import { Clock, Context, Deferred, Effect, Layer, Metric, PubSub, Stream, type SubscriptionRef, type Tracer } from "effect"
import { clip } from "../../domain/LogText.ts"
import { notificationsRejected } from "../../domain/Metrics.ts"
import type { GraphPresence } from "../../domain/Presence.ts"
import { NotificationsInbox } from "../notifications/NotificationsInbox.ts"
import { every, pollIntervalMillis } from "./PollSchedule.ts"
import { PresenceReader } from "./PresenceReader.ts"
import { makeReadRetry, type ReadHealth } from "./ReadRetry.ts"
import { SubscriptionManager } from "../subscriptions/SubscriptionManager.ts"
import { SubscriptionSettings } from "../subscriptions/SubscriptionSettings.ts"

export type PresenceOrigin = "push" | "poll" | "reconcile" | "initial"

export interface PresenceChange {
  readonly userId: string
  readonly presence: GraphPresence
  /** Milliseconds on the Clock when the change was received. */
  readonly receivedAt: number
  readonly origin: PresenceOrigin
  /** For a rich notification: milliseconds on the Clock when it was decrypted. */
  readonly decryptedAt?: number
  /** For a rich notification: its decryption's span, so that the change's trace goes on (webhook → … → SetPresence). */
  readonly span?: Tracer.AnySpan | undefined
}

export class PresenceSource extends Context.Service<PresenceSource, {
  readonly changes: Stream.Stream<PresenceChange>
  initialSync(userIds: ReadonlyArray<string>): Effect.Effect<void>
  setUsers(userIds: ReadonlyArray<string>): Effect.Effect<void>
  readonly users: Effect.Effect<ReadonlyArray<string>>
  /** Re-reads every user now (the reconciler's and the poller's round). */
  readonly reconcileNow: Effect.Effect<void>
  /** Whether reads are failing and being retried (ReadRetry.ts), for the status page. */
  readonly readHealth: SubscriptionRef.SubscriptionRef<ReadHealth>
}>()("teams-presence-connector/graph/presence/PresenceSource") {
  /** Push mode: notifications, refetches of basic notifications, resyncs and the periodic reconciler. */
  static readonly layerPush = Layer.effect(
    PresenceSource,
    Effect.gen(function*() {
      const settings = yield* SubscriptionSettings
      const inbox = yield* NotificationsInbox
      const manager = yield* SubscriptionManager
      const core = yield* makeCore("reconcile")
      yield* inbox.presences.pipe(
        Stream.runForEachArray((pushed) => core.apply(pushed, "push")),
        Effect.forkScoped
      )
      yield* inbox.refetch.pipe(Stream.runForEach((ids) => core.read(ids, "push")), Effect.forkScoped)
      yield* manager.resyncs.pipe(
        Stream.runForEach((ids) => core.read(ids.filter((id) => core.has(id)), "reconcile")),
        Effect.forkScoped
      )
      yield* every(settings.reconcileMinutes * 60_000, core.readAll("reconcile")).pipe(Effect.forkScoped)
      return core.service
    })
  )

  /** Poll-only mode: no subscriptions; every user read every pollSeconds (stretched to stay inside the rate limit). */
  static readonly layerPoll = Layer.effect(
    PresenceSource,
    Effect.gen(function*() {
      const settings = yield* SubscriptionSettings
      const core = yield* makeCore("poll")
      yield* Effect.gen(function*() {
        while (true) {
          const interval = pollIntervalMillis(settings.pollSeconds, core.userCount())
          yield* Effect.sleep(interval)
          yield* core.readAll("poll")
        }
      }).pipe(Effect.forkScoped)
      return core.service
    })
  )
}

/** Equal as JSON; two strings (the usual availability and activity) without serialising them. */
const sameJson = (a: unknown, b: unknown): boolean =>
  typeof a === "string" || typeof b === "string" ? a === b : JSON.stringify(a ?? null) === JSON.stringify(b ?? null)

/**
 * Whether two presences show the same thing. Availability and activity first: they differ for almost every change, so
 * the hot path of a burst serialises nothing.
 */
const sameContent = (a: GraphPresence, b: GraphPresence): boolean =>
  sameJson(a.availability, b.availability) && sameJson(a.activity, b.activity) &&
  sameJson(a.statusMessage, b.statusMessage) && sameJson(a.outOfOfficeSettings, b.outOfOfficeSettings)

/** A presence as it reached the connector: read, or pushed (then also when it was decrypted). */
interface ReceivedPresence {
  readonly presence: GraphPresence
  readonly receivedAt: number
  readonly decryptedAt?: number
  readonly span?: Tracer.AnySpan | undefined
}

/** Push items older than the presence applied, counted with their attributes resolved once. */
const staleRejected = Metric.withAttributes(notificationsRejected, { reason: "stale" })

const makeCore = Effect.fnUntraced(function*(roundOrigin: "reconcile" | "poll") {
  const settings = yield* SubscriptionSettings
  const reader = yield* PresenceReader
  const hub = yield* PubSub.unbounded<PresenceChange>()
  const known = new Map<string, GraphPresence>()
  let users: ReadonlyArray<string> = []
  let userSet = new Set<string>()
  const key = (id: string) => id.toLowerCase()

  /**
   * The changes among `received`, published together: a chunk of a burst goes on as one array. An older
   * sequenceNumber than the one applied is dropped.
   */
  const apply = Effect.fnUntraced(function*(received: ReadonlyArray<ReceivedPresence>, origin: PresenceOrigin) {
    const changes: Array<PresenceChange> = []
    let stale = 0
    for (const { decryptedAt, presence, receivedAt, span } of received) {
      const id = key(presence.id)
      if (!userSet.has(id)) continue
      const last = known.get(id)
      if (last !== undefined) {
        const older = presence.sequenceNumber != null && last.sequenceNumber != null &&
          presence.sequenceNumber < last.sequenceNumber
        if (older) {
          if (origin === "push") stale++
          continue
        }
        if (sameContent(last, presence)) {
          known.set(id, presence)
          continue
        }
      }
      known.set(id, presence)
      changes.push({
        userId: presence.id,
        presence,
        receivedAt,
        origin,
        ...(decryptedAt !== undefined ? { decryptedAt } : {}),
        ...(span !== undefined ? { span } : {})
      })
    }
    if (stale > 0) yield* Metric.update(staleRejected, stale)
    if (changes.length > 0) yield* PubSub.publishAll(hub, changes)
  })

  const readOnce = (ids: ReadonlyArray<string>, origin: PresenceOrigin) =>
    ids.length === 0 ? Effect.void : reader.getPresences(ids, settings.pollCredential).pipe(
      Effect.flatMap((presences) =>
        Effect.flatMap(Clock.currentTimeMillis, (receivedAt) => apply(presences.map((presence) => ({ presence, receivedAt })), origin))
      )
    )

  // Users whose read failed are read again with backoff, not left to the next round.
  const retry = yield* makeReadRetry({
    firstDelayMillis: settings.readRetryFirstMillis,
    maxDelayMillis: settings.readRetryMaxMillis,
    read: (ids) => readOnce(ids, roundOrigin),
    wanted: (id) => userSet.has(key(id))
  })

  const read = (ids: ReadonlyArray<string>, origin: PresenceOrigin) =>
    ids.length === 0 ? Effect.void : readOnce(ids, origin).pipe(
      Effect.andThen(retry.succeeded(ids)),
      Effect.catch((error) =>
        Effect.logWarning(`reading ${ids.length} presences failed (${origin}): ${clip(error.message, 300)}; retrying those users`).pipe(
          Effect.annotateLogs({ logKey: "presence-read-failed" }),
          Effect.andThen(retry.failed(ids, error))
        )
      )
    )

  // Rounds start after the initial read, so the first presence of every user is reported as "initial".
  const synced = yield* Deferred.make<void>()
  const readAll = (origin: PresenceOrigin) => Deferred.await(synced).pipe(Effect.andThen(Effect.suspend(() => read(users, origin))))

  const setUsers = (userIds: ReadonlyArray<string>) =>
    Effect.suspend(() => {
      const added = userIds.filter((id) => !userSet.has(key(id)))
      users = [...userIds]
      userSet = new Set(users.map(key))
      for (const id of [...known.keys()]) if (!userSet.has(id)) known.delete(id)
      return read(added, roundOrigin === "poll" ? "poll" : "reconcile")
    })

  const service = PresenceSource.of({
    changes: Stream.fromPubSub(hub),
    initialSync: (userIds) =>
      Effect.suspend(() => {
        users = [...userIds]
        userSet = new Set(users.map(key))
        return read(users, "initial").pipe(Effect.ensuring(Deferred.succeed(synced, undefined)))
      }),
    setUsers,
    users: Effect.sync(() => users),
    reconcileNow: readAll(roundOrigin),
    readHealth: retry.health
  })
  return {
    service,
    apply,
    read,
    readAll,
    has: (id: string) => userSet.has(key(id)),
    userCount: () => users.length
  }
})
