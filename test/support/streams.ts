/**
 * Waiting on streams without hoping: each helper subscribes before it returns (its `onStart` has run), so whatever the
 * test does next is seen, and the effect it returns completes when the items have arrived.
 */
import { Deferred, Effect, type Scope, Stream } from "effect"

/** Subscribes to `stream` now; the returned effect completes with its first `count` items. */
export const collect = <A>(stream: Stream.Stream<A>, count: number): Effect.Effect<Effect.Effect<ReadonlyArray<A>>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const done = yield* Deferred.make<ReadonlyArray<A>>()
    const started = yield* Deferred.make<void>()
    yield* stream.pipe(
      Stream.onStart(Deferred.succeed(started, undefined)),
      Stream.take(count),
      Stream.runCollect,
      Effect.flatMap((all) => Deferred.succeed(done, all)),
      Effect.forkScoped
    )
    yield* Deferred.await(started)
    return Deferred.await(done)
  })

/** Subscribes to `stream` now; the returned effect completes with its first item that satisfies `predicate`. */
export const firstWhere = <A>(stream: Stream.Stream<A>, predicate: (a: A) => boolean): Effect.Effect<Effect.Effect<A>, never, Scope.Scope> =>
  collect(stream.pipe(Stream.filter(predicate)), 1).pipe(Effect.map(Effect.map((all) => all[0]!)))

/** Subscribes to `stream` now and keeps every item in the returned array as it arrives. */
export const record = <A>(stream: Stream.Stream<A>): Effect.Effect<ReadonlyArray<A>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const items: Array<A> = []
    const started = yield* Deferred.make<void>()
    yield* stream.pipe(
      Stream.onStart(Deferred.succeed(started, undefined)),
      Stream.runForEach((item) => Effect.sync(() => void items.push(item))),
      Effect.forkScoped
    )
    yield* Deferred.await(started)
    return items
  })
