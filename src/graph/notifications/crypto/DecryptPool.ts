/**
 * Decrypts rich notifications off the event loop: a pool of worker threads (one per core by default), each holding the
 * connector's private keys. Items go out in
 * small chunks to the least-loaded worker, so a burst of thousands of items never blocks the webhook and a caller
 * that decrypts chunk by chunk gets its first results after one chunk, not after the whole burst.
 */
import { Context, Deferred, Effect, Layer, Redacted, Schema } from "effect"
import * as os from "node:os"
import { Worker } from "node:worker_threads"
import type { EncryptedContent } from "../Notifications.ts"
import { SubscriptionSettings } from "../../subscriptions/SubscriptionSettings.ts"
import { CertificateStore } from "./CertificateStore.ts"
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
    const size = requestedSize > 0 ? requestedSize : defaultSize(os.availableParallelism())
    const pending = new Map<number, Deferred.Deferred<ReadonlyArray<DecryptResult>>>()
    let nextId = 0
    const workerUrl = decryptWorkerUrl(import.meta.url)

    let keyMessage: unknown = { type: "keys", keys: [] }
    let closing = false
    /** Which requests each worker holds, so a crashed worker fails only its own and is replaced. */
    const owned = new Map<Worker, Set<number>>()
    /** Items queued at each worker, for least-loaded dispatch. */
    const load = new Map<Worker, number>()
    const itemCount = new Map<number, number>()
    const spawn = (slot: number): Worker => {
      const worker = new Worker(workerUrl)
      worker.unref()
      owned.set(worker, new Set())
      load.set(worker, 0)
      worker.on("message", (message: { id: number; results: ReadonlyArray<DecryptResult> }) => {
        const deferred = pending.get(message.id)
        owned.get(worker)?.delete(message.id)
        load.set(worker, (load.get(worker) ?? 0) - (itemCount.get(message.id) ?? 0))
        itemCount.delete(message.id)
        if (deferred === undefined) return
        pending.delete(message.id)
        Deferred.doneUnsafe(deferred, Effect.succeed(message.results))
      })
      const replace = (reason: string) => {
        const ids = owned.get(worker) ?? new Set<number>()
        owned.delete(worker)
        load.delete(worker)
        for (const id of ids) {
          itemCount.delete(id)
          const deferred = pending.get(id)
          pending.delete(id)
          if (deferred !== undefined) Deferred.doneUnsafe(deferred, Effect.die(new Error(`decryption worker failed: ${reason}`)))
        }
        if (!closing && workers[slot] === worker) {
          workers[slot] = spawn(slot)
          workers[slot].postMessage(keyMessage)
        }
      }
      worker.on("error", (error) => replace(String(error)))
      worker.on("exit", (code) => replace(`exited with code ${code}`))
      return worker
    }
    const workers: Array<Worker> = []
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        for (let slot = 0; slot < size; slot++) workers.push(spawn(slot))
      }),
      () =>
        Effect.sync(() => {
          closing = true
        }).pipe(Effect.andThen(Effect.promise(() => Promise.all(workers.map((w) => w.terminate())))), Effect.ignore)
    )

    const reloadKeys = Effect.gen(function*() {
      const keys = yield* store.keys
      keyMessage = {
        type: "keys",
        keys: keys.map((k) => ({ id: k.id, thumbprint: k.thumbprint, pem: Redacted.value(k.privateKeyPem) }))
      }
      for (const worker of workers) worker.postMessage(keyMessage)
    })
    yield* reloadKeys

    const leastLoaded = (): Worker => {
      let best = workers[0]!
      for (const worker of workers) if ((load.get(worker) ?? 0) < (load.get(best) ?? 0)) best = worker
      return best
    }
    const runChunk = (items: ReadonlyArray<EncryptedContent>) =>
      Effect.gen(function*() {
        const deferred = yield* Deferred.make<ReadonlyArray<DecryptResult>>()
        const id = nextId++
        pending.set(id, deferred)
        const worker = leastLoaded()
        owned.get(worker)?.add(id)
        itemCount.set(id, items.length)
        load.set(worker, (load.get(worker) ?? 0) + items.length)
        worker.postMessage({ type: "decrypt", id, items })
        return yield* Deferred.await(deferred).pipe(
          Effect.onInterrupt(() => Effect.sync(() => pending.delete(id))),
          // A crashed worker fails its items (counted as "decrypt" by the caller); the pool has replaced it already.
          Effect.catchDefect((defect) =>
            Effect.logError("decryption worker failed; its items are dropped", defect).pipe(
              Effect.as(items.map((): DecryptResult => ({ ok: false, reason: "decrypt", message: String(defect) })))
            )
          )
        )
      })

    const decrypt = (items: ReadonlyArray<EncryptedContent>): Effect.Effect<ReadonlyArray<DecryptResult>> => {
      if (items.length === 0) return Effect.succeed([])
      const chunkSize = Math.min(maxChunk, Math.max(1, Math.ceil(items.length / workers.length)))
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
