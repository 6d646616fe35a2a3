/** Stream helpers of the tests. */
import { Effect, type Scope, Stream } from "effect"

/**
 * The stream, subscribed now in the current scope: what is published from here on reaches it, without waiting for a
 * forked consumer to get going (a PubSub-backed stream subscribes only when it starts to run).
 */
export const subscribedNow = <A, E, R>(stream: Stream.Stream<A, E, R>): Effect.Effect<Stream.Stream<A, E>, never, R | Scope.Scope> =>
  Effect.map(Stream.toPull(stream), (pull) => Stream.fromPull(Effect.succeed(pull)))
