/**
 * Decrypts rich notifications off the event loop: a pool of worker threads (one per core by default), each holding the
 * connector's private keys. A batch is split across the workers, so a burst of thousands of items never blocks the webhook.
 */
import { Context, Deferred, Effect, Layer, Redacted, Schema } from "effect"
import * as os from "node:os"
import { Worker } from "node:worker_threads"
import type { EncryptedContent } from "../Notifications.ts"
import { SubscriptionSettings } from "../SubscriptionSettings.ts"
import { CertificateStore } from "./CertificateStore.ts"
import type { DecryptResult } from "./RichCrypto.ts"

export class DecryptPoolError extends Schema.TaggedError<DecryptPoolError>()("DecryptPoolError", {
  message: Schema.String
}) {}

export class DecryptPool extends Context.Service<DecryptPool, {
  /** One result per item, in order. Failures are results, not errors: one bad item never fails its batch. */
  decrypt(items: ReadonlyArray<EncryptedContent>): Effect.Effect<ReadonlyArray<DecryptResult>>
  /** Reloads the keys into every worker (after a rotation or retirement). */
  readonly reloadKeys: Effect.Effect<void>
  readonly size: number
}>()("presence-connector/graph/crypto/DecryptPool") {
  static readonly make = Effect.fn("DecryptPool.make")(function*(requestedSize: number) {
    const store = yield* CertificateStore
    const size = requestedSize > 0 ? requestedSize : Math.max(1, os.availableParallelism())
    const pending = new Map<number, Deferred.Deferred<ReadonlyArray<DecryptResult>>>()
    let nextId = 0
    const workerUrl = new URL("./decryptWorker.ts", import.meta.url)

    const workers = yield* Effect.acquireRelease(
      Effect.sync(() =>
        Array.from({ length: size }, () => {
          const worker = new Worker(workerUrl)
          worker.unref()
          worker.on("message", (message: { id: number; results: ReadonlyArray<DecryptResult> }) => {
            const deferred = pending.get(message.id)
            if (deferred === undefined) return
            pending.delete(message.id)
            Deferred.doneUnsafe(deferred, Effect.succeed(message.results))
          })
          worker.on("error", (error) => {
            for (const [id, deferred] of pending) {
              pending.delete(id)
              Deferred.doneUnsafe(deferred, Effect.die(error))
            }
          })
          return worker
        })
      ),
      (all) => Effect.promise(() => Promise.all(all.map((w) => w.terminate()))).pipe(Effect.ignore)
    )

    const reloadKeys = Effect.gen(function*() {
      const keys = yield* store.keys
      const message = {
        type: "keys",
        keys: keys.map((k) => ({ id: k.id, thumbprint: k.thumbprint, pem: Redacted.value(k.privateKeyPem) }))
      }
      for (const worker of workers) worker.postMessage(message)
    })
    yield* reloadKeys

    let cursor = 0
    const runChunk = (items: ReadonlyArray<EncryptedContent>) =>
      Effect.gen(function*() {
        const deferred = yield* Deferred.make<ReadonlyArray<DecryptResult>>()
        const id = nextId++
        pending.set(id, deferred)
        const worker = workers[cursor++ % workers.length]!
        worker.postMessage({ type: "decrypt", id, items })
        return yield* Deferred.await(deferred).pipe(Effect.onInterrupt(() => Effect.sync(() => pending.delete(id))))
      })

    const decrypt = (items: ReadonlyArray<EncryptedContent>): Effect.Effect<ReadonlyArray<DecryptResult>> => {
      if (items.length === 0) return Effect.succeed([])
      const chunkSize = Math.max(16, Math.ceil(items.length / workers.length))
      const chunks: Array<ReadonlyArray<EncryptedContent>> = []
      for (let i = 0; i < items.length; i += chunkSize) chunks.push(items.slice(i, i + chunkSize))
      return Effect.forEach(chunks, runChunk, { concurrency: "unbounded" }).pipe(Effect.map((parts) => parts.flat()))
    }

    return DecryptPool.of({ decrypt, reloadKeys, size })
  })

  static readonly layer = Layer.effect(
    DecryptPool,
    Effect.gen(function*() {
      const settings = yield* SubscriptionSettings
      return yield* DecryptPool.make(settings.decryptWorkers)
    })
  )
}
