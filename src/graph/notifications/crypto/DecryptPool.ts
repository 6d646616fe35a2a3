/**
 * Decrypts rich notifications off the event loop: a pool of worker threads (one per core by default), each holding the
 * connector's private keys. Items go out in
 * small chunks to the least-loaded worker, so a burst of thousands of items never blocks the webhook and a caller
 * that decrypts chunk by chunk gets its first results after one chunk, not after the whole burst.
 * A connector on its own starts its workers (`DecryptPool.layer`); the tenants of one process share one set of workers
 * (`SharedDecryptWorkers`, `DecryptPool.layerShared`), each tenant's pool holding its own keys in them.
 */
import { Cause, Context, Effect, Exit, Layer, Redacted, Schema } from "effect"
import * as os from "node:os"
import type { EncryptedContent } from "../Notifications.ts"
import { SubscriptionSettings } from "../../subscriptions/SubscriptionSettings.ts"
import { CertificateStore } from "./CertificateStore.ts"
import { defaultWorkerNice, DecryptWorkers, type KeyOwner } from "./DecryptWorkers.ts"
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

/** Starts the workers in the current scope; they are stopped when it closes. */
const startWorkers = (requestedSize: number, nice: number) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const size = requestedSize > 0 ? requestedSize : defaultSize(os.availableParallelism())
      // A worker's crash or exit is logged (with the loggers of the workers' starter) as it is replaced.
      const run = Effect.runForkWith(yield* Effect.context<never>())
      const workers = new DecryptWorkers(decryptWorkerUrl(import.meta.url), size, nice, (message) => void run(Effect.logWarning(message)))
      workers.start()
      return workers
    }),
    (workers) => Effect.promise(() => workers.close()).pipe(Effect.ignore)
  )

/**
 * The decryption workers of a process with many tenants, shared by every tenant's connector (each a pool of its own
 * over them, `DecryptPool.layerShared`): two V8 isolates for the process instead of two per tenant.
 */
export class SharedDecryptWorkers extends Context.Service<SharedDecryptWorkers, {
  readonly workers: DecryptWorkers
  /** A key owner not used before in this process. */
  readonly nextOwner: () => KeyOwner
}>()("teams-presence-connector/graph/notifications/crypto/SharedDecryptWorkers") {
  /** `size` workers (0 = one per core), `nice` steps below the main thread, stopped when the layer's scope closes. */
  static readonly layer = (size: number, nice: number = defaultWorkerNice) =>
    Layer.effect(
      SharedDecryptWorkers,
      Effect.map(startWorkers(size, nice), (workers) => {
        let next = 0
        return SharedDecryptWorkers.of({ workers, nextOwner: () => ++next })
      })
    )
}

export class DecryptPool extends Context.Service<DecryptPool, {
  /** One result per item, in order. Failures are results, not errors: one bad item never fails its batch. */
  decrypt(items: ReadonlyArray<EncryptedContent>): Effect.Effect<ReadonlyArray<DecryptResult>>
  /**
   * The same without an effect, for a caller that must not wait in a fiber of its own (the pipeline's dispatcher,
   * Decryption.ts): `answered` is called once with one result per item (on the event loop, or at once), and with the
   * defect when a worker crashed (its items are then failed results). Returns what cancels the request.
   */
  post(items: ReadonlyArray<EncryptedContent>, answered: Answered): () => void
  /** Reloads the keys into every worker (after a rotation or retirement). */
  readonly reloadKeys: Effect.Effect<void>
  readonly size: number
  /** One item's cost on one worker (µs) as the workers time their chunks; undefined before the first (FloodGate.ts). */
  readonly itemMicros: () => number | undefined
  /** Items in the workers not answered yet, of every pool over them (the tenants of one process share them). */
  readonly pendingItems: () => number
}>()("teams-presence-connector/graph/notifications/crypto/DecryptPool") {
  /** A pool with workers of its own (`requestedSize`, 0 = one per core; `nice` steps below the main thread). */
  static readonly make = Effect.fn("DecryptPool.make")(function*(requestedSize: number, nice: number = defaultWorkerNice) {
    return yield* poolOver(yield* startWorkers(requestedSize, nice), 0)
  })

  /** A connector on its own: its own workers, as many as `notifications.decryptWorkers` says. */
  static readonly layer = Layer.effect(
    DecryptPool,
    Effect.gen(function*() {
      const settings = yield* SubscriptionSettings
      return yield* DecryptPool.make(settings.decryptWorkers, settings.decryptWorkerNice)
    })
  )

  /** A tenant's connector in a process of many: its keys in the process's shared workers, taken out when it stops. */
  static readonly layerShared = Layer.effect(
    DecryptPool,
    Effect.gen(function*() {
      const shared = yield* SharedDecryptWorkers
      return yield* poolOver(shared.workers, shared.nextOwner())
    })
  )
}

/** A posted request's answer: one result per item, and the defect that failed them when a worker crashed. */
export type Answered = (results: ReadonlyArray<DecryptResult>, crash?: unknown) => void

/** A pool over running workers: the certificate store's keys loaded as `owner`'s, and taken out when the scope closes. */
const poolOver = Effect.fnUntraced(function*(workers: DecryptWorkers, owner: KeyOwner) {
  const store = yield* CertificateStore
  const reloadKeys = Effect.gen(function*() {
    const keys = yield* store.keys
    workers.setKeys(owner, keys.map((k) => ({ id: k.id, thumbprint: k.thumbprint, pem: Redacted.value(k.privateKeyPem) })))
  })
  yield* reloadKeys
  yield* Effect.addFinalizer(() => Effect.sync(() => workers.dropKeys(owner)))
  return DecryptPool.of({
    decrypt: (items) => decrypt(workers, owner, items),
    post: (items, answered) => post(workers, owner, items, answered),
    reloadKeys,
    size: workers.size,
    itemMicros: () => workers.itemMicros,
    pendingItems: () => workers.pendingItems
  })
})

/**
 * Splits the items over the workers (chunks of at most `maxChunk`) and joins the results in order. The pipeline hands
 * over one chunk at a time (Decryption.ts), which goes as it is, without a fiber of its own: with many tenants that is
 * a POST of one or two items, once per change.
 */
const decrypt = (workers: DecryptWorkers, owner: KeyOwner, items: ReadonlyArray<EncryptedContent>): Effect.Effect<ReadonlyArray<DecryptResult>> => {
  if (items.length === 0) return Effect.succeed([])
  const chunkSize = Math.min(maxChunk, Math.max(1, Math.ceil(items.length / workers.size)))
  if (items.length <= chunkSize) return decryptChunk(workers, owner, items)
  const chunks: Array<ReadonlyArray<EncryptedContent>> = []
  for (let i = 0; i < items.length; i += chunkSize) chunks.push(items.slice(i, i + chunkSize))
  return Effect.forEach(chunks, (chunk) => decryptChunk(workers, owner, chunk), { concurrency: "unbounded" }).pipe(
    Effect.map((parts) => parts.flat())
  )
}

const cancelNothing = (): void => {}

/** Failed results for the `count` items a crashed worker held (a count: the answer's callback keeps no content). */
const crashed = (count: number, defect: unknown): ReadonlyArray<DecryptResult> =>
  Array.from({ length: count }, (): DecryptResult => ({ ok: false, reason: "decrypt", message: String(defect) }))

/**
 * `decrypt` without an effect: the same split over the workers, the parts' results joined in order by a count of the
 * parts still out; `answered` once, when the last part is back.
 */
const post = (workers: DecryptWorkers, owner: KeyOwner, items: ReadonlyArray<EncryptedContent>, answered: Answered): () => void => {
  if (items.length === 0) {
    answered([])
    return cancelNothing
  }
  const chunkSize = Math.min(maxChunk, Math.max(1, Math.ceil(items.length / workers.size)))
  if (items.length <= chunkSize) {
    const count = items.length
    const id = workers.post(owner, items, (exit) => Exit.isSuccess(exit) ? answered(exit.value) : answered(crashed(count, Cause.squash(exit.cause)), Cause.squash(exit.cause)))
    return () => workers.cancel(id)
  }
  const results: Array<DecryptResult> = new Array(items.length)
  const ids: Array<number> = []
  let out = 0
  let crash: unknown
  for (let start = 0; start < items.length; start += chunkSize) {
    const part = items.slice(start, start + chunkSize)
    const count = part.length
    out++
    ids.push(workers.post(owner, part, (exit) => {
      if (Exit.isFailure(exit)) crash = Cause.squash(exit.cause)
      const partResults = Exit.isSuccess(exit) ? exit.value : crashed(count, crash)
      for (let i = 0; i < count; i++) results[start + i] = partResults[i]!
      if (--out === 0) answered(results, crash)
    }))
  }
  return () => {
    for (const id of ids) workers.cancel(id)
  }
}

/** One chunk to the workers; resumed by their answer (the request is cancelled when the caller is interrupted). */
const decryptChunk = (workers: DecryptWorkers, owner: KeyOwner, items: ReadonlyArray<EncryptedContent>): Effect.Effect<ReadonlyArray<DecryptResult>> =>
  // `resume` alone: a register function taking the abort signal too would make an AbortController per chunk.
  Effect.callback<ReadonlyArray<DecryptResult>>((resume) => {
    const id = workers.post(owner, items, resume)
    return Effect.sync(() => workers.cancel(id))
  }).pipe(
    // A crashed worker fails its items (counted as "decrypt" by the caller); the pool has replaced it already.
    Effect.catchDefect((defect) =>
      Effect.logError("decryption worker failed; its items are dropped", defect).pipe(
        Effect.as(items.map((): DecryptResult => ({ ok: false, reason: "decrypt", message: String(defect) })))
      )
    )
  )
