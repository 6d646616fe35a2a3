/**
 * Decrypts rich notifications off the event loop: a pool of worker threads (one per core by default), each holding the
 * connector's private keys. Items go out in
 * small chunks to the least-loaded worker, so a burst of thousands of items never blocks the webhook and a caller
 * that decrypts chunk by chunk gets its first results after one chunk, not after the whole burst.
 */
import { Context, Deferred, Effect, Layer, Redacted, Schema } from "effect"
import * as os from "node:os"
import type { EncryptedContent } from "../Notifications.ts"
import { SubscriptionSettings } from "../../subscriptions/SubscriptionSettings.ts"
import { CertificateStore } from "./CertificateStore.ts"
import { DecryptWorkers } from "./DecryptWorkers.ts"
import type { DecryptResult } from "./RichCrypto.ts"

/**
 * Items per message to a worker: ≈ 17 ms of unwrapping (50 × ≈ 0.35 ms), so results come back within tens of
 * milliseconds while a burst costs half the cross-thread wake-ups of 25 (docs/performance.md, round 4).
 */
export const maxChunk = 50

/**
 * One worker per core. Measured on 2 cores with a 10,000-item burst: two workers halve the burst's added latency
 * (p99 930 → 399 ms) while the webhook handler's p99 stays at 10–20 ms; the event loop gets its share from the OS.
 */
export const defaultSize = (cores: number): number => Math.max(1, cores)

/**
 * The worker's file beside this module, with this module's own extension: decryptWorker.ts when the connector runs
 * from src/, decryptWorker.js from the built package (dist/), where the compiler rewrote the imports but not this URL.
 */
export const decryptWorkerUrl = (moduleUrl: string): URL =>
  new URL(`./decryptWorker${moduleUrl.endsWith(".ts") ? ".ts" : ".js"}`, moduleUrl)

export class DecryptPoolError extends Schema.TaggedError<DecryptPoolError>()("DecryptPoolError", {
  message: Schema.String
}) {}

export class DecryptPool extends Context.Service<DecryptPool, {
  /** One result per item, in order. Failures are results, not errors: one bad item never fails its batch. */
  decrypt(items: ReadonlyArray<EncryptedContent>): Effect.Effect<ReadonlyArray<DecryptResult>>
  /** Reloads the keys into every worker (after a rotation or retirement). */
  readonly reloadKeys: Effect.Effect<void>
  readonly size: number
}>()("teams-presence-connector/graph/notifications/crypto/DecryptPool") {
  static readonly make = Effect.fn("DecryptPool.make")(function*(requestedSize: number) {
    const store = yield* CertificateStore
    const workers = new DecryptWorkers(decryptWorkerUrl(import.meta.url), requestedSize > 0 ? requestedSize : defaultSize(os.availableParallelism()))
    yield* Effect.acquireRelease(
      Effect.sync(() => workers.start()),
      () => Effect.promise(() => workers.close()).pipe(Effect.ignore)
    )
    const reloadKeys = Effect.gen(function*() {
      const keys = yield* store.keys
      workers.setKeys(keys.map((k) => ({ id: k.id, thumbprint: k.thumbprint, pem: Redacted.value(k.privateKeyPem) })))
    })
    yield* reloadKeys
    return DecryptPool.of({ decrypt: (items) => decrypt(workers, items), reloadKeys, size: workers.size })
  })

  static readonly layer = Layer.effect(
    DecryptPool,
    Effect.gen(function*() {
      const settings = yield* SubscriptionSettings
      return yield* DecryptPool.make(settings.decryptWorkers)
    })
  )
}

/** Splits the items over the workers (chunks of at most `maxChunk`) and joins the results in order. */
const decrypt = (workers: DecryptWorkers, items: ReadonlyArray<EncryptedContent>): Effect.Effect<ReadonlyArray<DecryptResult>> => {
  if (items.length === 0) return Effect.succeed([])
  const chunkSize = Math.min(maxChunk, Math.max(1, Math.ceil(items.length / workers.size)))
  const chunks: Array<ReadonlyArray<EncryptedContent>> = []
  for (let i = 0; i < items.length; i += chunkSize) chunks.push(items.slice(i, i + chunkSize))
  return Effect.forEach(chunks, (chunk) => decryptChunk(workers, chunk), { concurrency: "unbounded" }).pipe(
    Effect.map((parts) => parts.flat())
  )
}

const decryptChunk = Effect.fnUntraced(function*(workers: DecryptWorkers, items: ReadonlyArray<EncryptedContent>) {
  const results = yield* Deferred.make<ReadonlyArray<DecryptResult>>()
  const id = workers.post(items, results)
  return yield* Deferred.await(results).pipe(
    Effect.onInterrupt(() => Effect.sync(() => workers.cancel(id))),
    // A crashed worker fails its items (counted as "decrypt" by the caller); the pool has replaced it already.
    Effect.catchDefect((defect) =>
      Effect.logError("decryption worker failed; its items are dropped", defect).pipe(
        Effect.as(items.map((): DecryptResult => ({ ok: false, reason: "decrypt", message: String(defect) })))
      )
    )
  )
})
