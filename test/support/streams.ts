/**
 * Waiting on streams without hoping. Each helper forks its consumer with `startImmediately`: the fiber runs until it
 * first waits, which for a stream over a PubSub or a SubscriptionRef (every service stream here) is once it has
 * subscribed. So what the test does next is seen, with no yield and no sleep. (`Stream.onStart` would not do: its
 * effect runs before the stream subscribes.)
 */
import { Effect, Fiber, type Scope, Stream, SubscriptionRef } from "effect"

const consume = <A>(effect: Effect.Effect<A>): Effect.Effect<Fiber.Fiber<A>, never, Scope.Scope> =>
  Effect.forkScoped(effect, { startImmediately: true })

/**
 * The stream, subscribed now in the current scope: what is published from here on reaches it, without waiting for a
 * forked consumer to get going (a PubSub-backed stream subscribes only when it starts to run).
 */
export const subscribedNow = <A, E, R>(stream: Stream.Stream<A, E, R>): Effect.Effect<Stream.Stream<A, E>, never, R | Scope.Scope> =>
  Effect.map(Stream.toPull(stream), (pull) => Stream.fromPull(Effect.succeed(pull)))

/** Subscribes to `stream` now; the returned effect completes with its first `count` items. */
export const collect = <A>(stream: Stream.Stream<A>, count: number): Effect.Effect<Effect.Effect<ReadonlyArray<A>>, never, Scope.Scope> =>
  consume(stream.pipe(Stream.take(count), Stream.runCollect)).pipe(Effect.map(Fiber.join))

/** Subscribes to `stream` now; the returned effect completes with its first item that satisfies `predicate`. */
export const firstWhere = <A>(stream: Stream.Stream<A>, predicate: (a: A) => boolean): Effect.Effect<Effect.Effect<A>, never, Scope.Scope> =>
  collect(stream.pipe(Stream.filter(predicate)), 1).pipe(Effect.map(Effect.map((all) => all[0]!)))

/** Subscribes to `stream` now and keeps every item in the returned array as it arrives. */
export const record = <A>(stream: Stream.Stream<A>): Effect.Effect<ReadonlyArray<A>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const items: Array<A> = []
    yield* consume(stream.pipe(Stream.runForEach((item) => Effect.sync(() => void items.push(item)))))
    return items
  })

/** Subscribes to the changes of `ref` now and keeps every value in the returned array, the current one first. */
export const recordChanges = <A>(ref: SubscriptionRef.SubscriptionRef<A>): Effect.Effect<ReadonlyArray<A>, never, Scope.Scope> =>
  record(SubscriptionRef.changes(ref))
