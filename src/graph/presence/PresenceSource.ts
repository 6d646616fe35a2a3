/**
 * One typed stream of Teams presence changes, whichever mode runs: push (rich notifications, plus a reconciler that
 * re-reads every presence each `reconcileMinutes` and after every resync event) or poll-only (every `pollSeconds`
 * with the application credential). What reaches the stream is decided once, per Teams user, in PresenceState.ts:
 * only differences from the last known presence, and never one older than the one applied (by sequenceNumber).
 *
 * The user set: `initialSync(userIds)` sets it and reads everything once; `setUsers(userIds)` changes it later
 * (new users are read at once). Subscribe to `changes` before calling `initialSync`.
 */
import { Clock, Context, Deferred, Effect, Layer, PubSub, Stream, type SubscriptionRef } from "effect"
import { clip } from "../../domain/LogText.ts"
import type { CredentialRef } from "../client/GraphSettings.ts"
import { NotificationsInbox } from "../notifications/NotificationsInbox.ts"
import { makeRejections } from "../notifications/Rejections.ts"
import { SubscriptionManager } from "../subscriptions/SubscriptionManager.ts"
import { SubscriptionSettings } from "../subscriptions/SubscriptionSettings.ts"
import { makeFloodFallback } from "./FloodFallback.ts"
import { every, pollIntervalMillis } from "./PollSchedule.ts"
import { defaultPresenceReaderOptions, PresenceReader } from "./PresenceReader.ts"
import { type PresenceChange, type PresenceOrigin, PresenceState, type ReceivedPresence } from "./PresenceState.ts"
import { makeReadRetry, type ReadHealth } from "./ReadRetry.ts"

export type { PresenceChange, PresenceOrigin } from "./PresenceState.ts"

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
      // Applied in the inbox's publisher fiber, chunk by chunk: no stream between them.
      yield* inbox.consumePresences((pushed) => apply(core, pushed, "push"))
      // Basic notifications, and rich items over the decryption's latency budget: read, up to 650 users per request.
      const fallback = yield* makeFloodFallback({
        read: (ids, requestedAt) => read(core, ids.filter((id) => core.state.has(id)), "push", requestedAt),
        maxPerRead: defaultPresenceReaderOptions.batchSize,
        readers: defaultPresenceReaderOptions.concurrency
      })
      yield* inbox.refetch.pipe(Stream.runForEach(fallback.offer), Effect.forkScoped)
      yield* manager.resyncs.pipe(
        Stream.runForEach((ids) => read(core, ids.filter((id) => core.state.has(id)), "reconcile")),
        Effect.forkScoped
      )
      yield* every(settings.reconcileMinutes * 60_000, readAll(core, "reconcile")).pipe(Effect.forkScoped)
      return serviceOf(core)
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
          yield* Effect.sleep(pollIntervalMillis(settings.pollSeconds, core.state.users.length))
          yield* readAll(core, "poll")
        }
      }).pipe(Effect.forkScoped)
      return serviceOf(core)
    })
  )
}

/** The presence source of either mode: its state, where changes go, and how it reads. */
interface Core {
  /** The origin of a round (and of the reads of users who join): the reconciler's, or the poller's. */
  readonly roundOrigin: "reconcile" | "poll"
  readonly credential: CredentialRef
  readonly reader: PresenceReader["Service"]
  readonly state: PresenceState
  readonly hub: PubSub.PubSub<PresenceChange>
  /** Rounds start after the initial read, so the first presence of every user is reported as "initial". */
  readonly synced: Deferred.Deferred<void>
  readonly retry: Effect.Success<ReturnType<typeof makeReadRetry>>
}

const makeCore = Effect.fnUntraced(function*(roundOrigin: Core["roundOrigin"]) {
  const settings = yield* SubscriptionSettings
  const reads = {
    roundOrigin,
    credential: settings.pollCredential,
    reader: yield* PresenceReader,
    state: new PresenceState(),
    hub: yield* PubSub.unbounded<PresenceChange>(),
    synced: yield* Deferred.make<void>()
  }
  // Users whose read failed are read again with backoff, not left to the next round.
  const retry = yield* makeReadRetry({
    firstDelayMillis: settings.readRetryFirstMillis,
    maxDelayMillis: settings.readRetryMaxMillis,
    read: (ids) => readOnce(reads, ids, roundOrigin),
    wanted: (id) => reads.state.has(id)
  })
  return { ...reads, retry } satisfies Core
})

const serviceOf = (core: Core) =>
  PresenceSource.of({
    changes: Stream.fromPubSub(core.hub),
    initialSync: (userIds) => initialSync(core, userIds),
    setUsers: (userIds) => setUsers(core, userIds),
    users: Effect.sync(() => core.state.users),
    reconcileNow: readAll(core, core.roundOrigin),
    readHealth: core.retry.health
  })

/**
 * Applies presences to the state and publishes the changes together: a chunk of a burst goes on as one array. Stale
 * pushed items are counted and logged as one line per chunk.
 */
const apply = Effect.fnUntraced(function*(
  core: Pick<Core, "state" | "hub">,
  received: ReadonlyArray<ReceivedPresence>,
  origin: PresenceOrigin
) {
  const { changes, stale } = core.state.apply(received, origin)
  if (stale.length > 0) {
    const rejections = makeRejections()
    for (const presence of stale) rejections.add("stale", "an older or duplicate sequenceNumber", { userId: presence.id })
    yield* rejections.report(received.length)
  }
  if (changes.length > 0) yield* PubSub.publishAll(core.hub, changes)
})

/**
 * One read of `ids`, applied; fails with Graph's error. `requestedAt` (a read in place of pushed items) travels with
 * each presence, so that PresenceState drops the pushed items it made obsolete.
 */
const readOnce = Effect.fnUntraced(function*(
  core: Pick<Core, "state" | "hub" | "reader" | "credential">,
  ids: ReadonlyArray<string>,
  origin: PresenceOrigin,
  requestedAt?: number
) {
  if (ids.length === 0) return
  const presences = yield* core.reader.getPresences(ids, core.credential)
  const receivedAt = yield* Clock.currentTimeMillis
  yield* apply(core, presences.map((presence) => (requestedAt === undefined ? { presence, receivedAt } : { presence, receivedAt, requestedAt })), origin)
})

/** Reads `ids`; when that fails, the read retry takes them over. */
const read = Effect.fn("PresenceSource.read")(function*(core: Core, ids: ReadonlyArray<string>, origin: PresenceOrigin, requestedAt?: number) {
  if (ids.length === 0) return
  yield* readOnce(core, ids, origin, requestedAt).pipe(
    Effect.andThen(core.retry.succeeded(ids)),
    Effect.catch((error) =>
      Effect.logWarning(`reading ${ids.length} presences failed (${origin}): ${clip(error.message, 300)}; retrying those users`).pipe(
        Effect.annotateLogs({ logKey: "presence-read-failed" }),
        Effect.andThen(core.retry.failed(ids, error))
      )
    )
  )
})

/** A round: every served user, once the initial read is done. */
const readAll = Effect.fn("PresenceSource.readAll")(function*(core: Core, origin: PresenceOrigin) {
  yield* Deferred.await(core.synced)
  yield* read(core, core.state.users, origin)
})

const initialSync = Effect.fn("PresenceSource.initialSync")(function*(core: Core, userIds: ReadonlyArray<string>) {
  core.state.setUsers(userIds)
  yield* read(core, core.state.users, "initial").pipe(Effect.ensuring(Deferred.succeed(core.synced, undefined)))
})

const setUsers = Effect.fn("PresenceSource.setUsers")(function*(core: Core, userIds: ReadonlyArray<string>) {
  const added = core.state.setUsers(userIds)
  yield* read(core, added, core.roundOrigin)
})
