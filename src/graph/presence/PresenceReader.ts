/**
 * Bulk presence reads (protocols.md §1.4): getPresencesByUserId in batches of at most 650 ids, a few batches at a
 * time, never more than 1,500 requests in 30 s (the per-app, per-tenant limit) — counted by a Clock-driven window.
 */
import { Clock, Context, Effect, Layer, Option, Schema, Semaphore } from "effect"
import { GraphPresence } from "../../domain/Presence.ts"
import type { AuthError } from "../auth/AuthError.ts"
import { GraphClient } from "../client/GraphClient.ts"
import type { GraphError } from "../client/GraphError.ts"
import type { CredentialRef } from "../client/GraphSettings.ts"
import { PresenceBudget } from "../sessions/PresenceBudget.ts"

export const PresencesResponse = Schema.Struct({ value: Schema.Array(GraphPresence) })

export interface PresenceReaderOptions {
  readonly batchSize: number
  readonly concurrency: number
  readonly requestsPerWindow: number
  readonly windowMillis: number
}

export const defaultPresenceReaderOptions: PresenceReaderOptions = {
  batchSize: 650,
  concurrency: 4,
  requestsPerWindow: 1500,
  windowMillis: 30_000
}

/** A sliding-window limiter: `take` waits (on the Clock) until one more request fits into the window. */
export const makeRateLimiter = Effect.fnUntraced(function*(limit: number, windowMillis: number) {
  const lock = yield* Semaphore.make(1)
  const sent: Array<number> = []
  const take = lock.withPermits(1)(Effect.gen(function*() {
    while (true) {
      const now = yield* Clock.currentTimeMillis
      while (sent.length > 0 && sent[0]! <= now - windowMillis) sent.shift()
      if (sent.length < limit) {
        sent.push(now)
        return
      }
      yield* Effect.sleep(sent[0]! + windowMillis - now)
    }
  }))
  return { take }
})

export const chunk = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

export class PresenceReader extends Context.Service<PresenceReader, {
  getPresences(
    ids: ReadonlyArray<string>,
    credential: CredentialRef
  ): Effect.Effect<ReadonlyArray<GraphPresence>, GraphError | AuthError>
}>()("teams-presence-connector/graph/presence/PresenceReader") {
  static readonly layerWith = (options: Partial<PresenceReaderOptions>) =>
    Layer.effect(
      PresenceReader,
      Effect.gen(function*() {
        const graph = yield* GraphClient
        const config = { ...defaultPresenceReaderOptions, ...options }
        const batchSize = Math.max(1, Math.min(650, config.batchSize))
        // The application's presence budget when one is shared (reads and the PBX → Teams writes count together).
        const shared = yield* Effect.serviceOption(PresenceBudget)
        const limiter = yield* makeRateLimiter(config.requestsPerWindow, config.windowMillis)
        const limited = <A, E, R>(request: Effect.Effect<A, E, R>) =>
          Option.isSome(shared) ? shared.value.run(request) : Effect.andThen(limiter.take, request)

        const readBatch = Effect.fnUntraced(function*(ids: ReadonlyArray<string>, credential: CredentialRef) {
          const answer = yield* limited(graph.execute({
            method: "POST",
            url: "/v1.0/communications/getPresencesByUserId",
            credential,
            body: { ids },
            response: PresencesResponse
          }))
          return answer.value
        })

        const getPresences = Effect.fn("PresenceReader.getPresences")(function*(
          ids: ReadonlyArray<string>,
          credential: CredentialRef
        ) {
          const unique = Array.from(new Set(ids))
          const batches = yield* Effect.forEach(chunk(unique, batchSize), (batch) => readBatch(batch, credential), {
            concurrency: config.concurrency
          })
          return batches.flat() as ReadonlyArray<GraphPresence>
        })

        return PresenceReader.of({ getPresences })
      })
    )

  static readonly layer = PresenceReader.layerWith({})
}
