/**
 * The decryption pool's worker threads and their bookkeeping: which requests each worker holds (a crashed worker
 * fails only its own and is replaced, with the keys sent again) and how many items wait at each, for least-loaded
 * dispatch. Plain callbacks: a worker answers on the event loop, which resumes the request's caller.
 * Requests leave together, one message per worker: with many tenants a burst is thousands of requests of a few items,
 * posted by many fibers and webhook POSTs in one turn of the event loop, and every message costs a wake-up of the
 * worker and a context switch on the main thread. Small requests wait for the end of the turn (setImmediate) to go
 * with the turn's others; once `flushItems` items wait, they leave at the end of the current task (a microtask), so
 * a burst's large chunks never wait for the turn. The worker answers small requests together likewise
 * (decryptWorker.ts).
 * The workers may serve several owners (the tenants of one process, DecryptPool.ts): each owner's keys are kept apart
 * in the workers, and an owner's items are decrypted with its own keys only.
 */
import { Exit } from "effect"
import { Worker } from "node:worker_threads"
import type { EncryptedContent } from "../Notifications.ts"
import type { DecryptResult } from "./RichCrypto.ts"
import { blendItemCost } from "../FloodGate.ts"

/**
 * Called with the request's answer: the results, or a defect when its worker crashed. An Exit is an effect too, so an
 * `Effect.callback`'s resume takes it as it is.
 */
type Results = (answer: Exit.Exit<ReadonlyArray<DecryptResult>>) => void

/** Items waiting to be posted that go at the end of the current task rather than of the turn (as decryptWorker.ts's answerItems). */
export const flushItems = 16

/** A worker's answer to one chunk: its results in order, and the chunk's wall-clock time inside the worker (µs). */
interface WorkerAnswer {
  readonly id: number
  readonly results: ReadonlyArray<DecryptResult>
  readonly micros?: number
}

/** One chunk for a worker; the chunks posted within one task go in one message (`{ type: "decrypt", requests }`). */
interface WorkerRequest {
  readonly id: number
  readonly owner: KeyOwner
  readonly items: ReadonlyArray<EncryptedContent>
}

/**
 * How much lower than the main thread the workers run unless told otherwise (`notifications.decryptWorkerNice`, whose
 * default is 0; Linux nice steps, per thread; elsewhere they run as it does). 10 is the value measured in
 * docs/performance.md ("The flood's timeline").
 * Decryption is the elastic part of a flood — what it cannot take in time is read instead (FloodGate.ts) — while the
 * main thread answers the webhook, publishes, reads and writes to the PBX for every item, decrypted or read: when the
 * cores are short, the main thread goes first, and the workers' slower chunks show in their timing at once, so the
 * gate diverts more. Without contention the workers get whole cores as before.
 */
export const defaultWorkerNice = 0

/** Whose keys: a number per pool over these workers (a connector of its own uses 0). */
export type KeyOwner = number

export interface WorkerKey {
  readonly id: string
  readonly thumbprint: string
  readonly pem: string
}

export class DecryptWorkers {
  readonly #workers: Array<Worker> = []
  readonly #pending = new Map<number, Results>()
  /** Which requests each worker holds. */
  readonly #owned = new Map<Worker, Set<number>>()
  /** Items queued at each worker. */
  readonly #load = new Map<Worker, number>()
  readonly #itemCount = new Map<number, number>()
  #nextId = 0
  /** Each owner's keys, sent again to a replacement worker. */
  readonly #keys = new Map<KeyOwner, ReadonlyArray<WorkerKey>>()
  #closing = false
  /** Chunks posted in the current turn of the event loop, per worker, sent when it ends (`#flush`). */
  readonly #outbox = new Map<Worker, Array<WorkerRequest>>()
  #outboxItems = 0
  #taskFlushQueued = false
  #turnFlushQueued = false
  /** One item's cost on one worker (µs), as the workers time their chunks; undefined before the first answer. */
  #itemMicros: number | undefined

  readonly url: URL
  readonly size: number
  /** Nice steps below the main thread (0: the same priority). */
  readonly nice: number

  /** Told each time a worker crashed or exited and was replaced (for the log: a replacement is never silent). */
  readonly #onReplaced: ((message: string) => void) | undefined

  constructor(url: URL, size: number, nice: number = defaultWorkerNice, onReplaced?: (message: string) => void) {
    this.url = url
    this.size = size
    this.nice = nice
    this.#onReplaced = onReplaced
  }

  /** One item's cost on one worker (µs): a running figure over the chunks the workers timed (FloodGate.ts). */
  get itemMicros(): number | undefined {
    return this.#itemMicros
  }

  /** Items posted and not answered yet, of every owner (the tenants sharing these workers). */
  get pendingItems(): number {
    let items = 0
    for (const load of this.#load.values()) items += load
    return items
  }

  start(): void {
    for (let slot = 0; slot < this.size; slot++) this.#workers.push(this.#spawn(slot))
  }

  close(): Promise<unknown> {
    this.#closing = true
    return Promise.all(this.#workers.map((worker) => worker.terminate()))
  }

  /** Sends an owner's keys to every worker, and to every replacement from now on. */
  setKeys(owner: KeyOwner, keys: ReadonlyArray<WorkerKey>): void {
    // Chunks posted before the keys changed reach the workers before them, as they were posted.
    this.#flush()
    this.#keys.set(owner, keys)
    for (const worker of this.#workers) worker.postMessage({ type: "keys", owner, keys })
  }

  /** Takes an owner's keys out of every worker (its connector stopped). */
  dropKeys(owner: KeyOwner): void {
    if (!this.#keys.delete(owner)) return
    this.#flush()
    for (const worker of this.#workers) worker.postMessage({ type: "keys", owner, keys: [] })
  }

  /**
   * Sends an owner's chunk to the least-loaded worker, with the other chunks posted within the same turn of the event
   * loop (an immediate sends them), or within the same task once `flushItems` items wait (a microtask); `results`
   * is called with its answer. Returns the request's id.
   */
  post(owner: KeyOwner, items: ReadonlyArray<EncryptedContent>, results: Results): number {
    const id = this.#nextId++
    this.#pending.set(id, results)
    const worker = this.#leastLoaded()
    this.#owned.get(worker)?.add(id)
    this.#itemCount.set(id, items.length)
    this.#load.set(worker, (this.#load.get(worker) ?? 0) + items.length)
    const queued = this.#outbox.get(worker)
    if (queued === undefined) this.#outbox.set(worker, [{ id, owner, items }])
    else queued.push({ id, owner, items })
    this.#outboxItems += items.length
    if (this.#outboxItems >= flushItems) {
      if (!this.#taskFlushQueued) {
        this.#taskFlushQueued = true
        queueMicrotask(() => this.#flush())
      }
    } else if (!this.#turnFlushQueued) {
      this.#turnFlushQueued = true
      setImmediate(() => {
        this.#turnFlushQueued = false
        this.#flush()
      })
    }
    return id
  }

  /** One message per worker with the chunks posted since the last. */
  #flush(): void {
    this.#taskFlushQueued = false
    this.#outboxItems = 0
    for (const [worker, requests] of this.#outbox) worker.postMessage({ type: "decrypt", requests })
    this.#outbox.clear()
  }

  /** Forgets a request whose caller no longer waits (its answer, if any, is dropped). */
  cancel(id: number): void {
    this.#pending.delete(id)
  }

  #leastLoaded(): Worker {
    let best = this.#workers[0]!
    for (const worker of this.#workers) if ((this.#load.get(worker) ?? 0) < (this.#load.get(best) ?? 0)) best = worker
    return best
  }

  #spawn(slot: number): Worker {
    const worker = new Worker(this.url, { workerData: { nice: this.nice } })
    worker.unref()
    this.#owned.set(worker, new Set())
    this.#load.set(worker, 0)
    worker.on("message", (message: { readonly answers: ReadonlyArray<WorkerAnswer> }) => {
      for (const answer of message.answers) this.#answered(worker, answer)
    })
    worker.on("error", (error) => this.#replace(worker, slot, String(error)))
    worker.on("exit", (code) => this.#replace(worker, slot, `exited with code ${code}`))
    return worker
  }

  #answered(worker: Worker, message: WorkerAnswer): void {
    const deferred = this.#pending.get(message.id)
    if (typeof message.micros === "number") this.#itemMicros = blendItemCost(this.#itemMicros, message.results.length, message.micros)
    this.#owned.get(worker)?.delete(message.id)
    this.#load.set(worker, (this.#load.get(worker) ?? 0) - (this.#itemCount.get(message.id) ?? 0))
    this.#itemCount.delete(message.id)
    if (deferred === undefined) return
    this.#pending.delete(message.id)
    deferred(Exit.succeed(message.results))
  }

  /** Fails the requests a crashed worker held and puts a new worker with the keys in its slot. */
  #replace(worker: Worker, slot: number, reason: string): void {
    const ids = this.#owned.get(worker) ?? new Set<number>()
    const replacing = !this.#closing && this.#workers[slot] === worker
    // Told before the requests fail, which resumes their callers.
    if (replacing) this.#onReplaced?.(`decryption worker ${slot + 1} of ${this.size} ${reason}: started again (${ids.size} request(s) it held failed)`)
    this.#owned.delete(worker)
    this.#outbox.delete(worker)
    this.#load.delete(worker)
    for (const id of ids) {
      this.#itemCount.delete(id)
      const deferred = this.#pending.get(id)
      this.#pending.delete(id)
      if (deferred !== undefined) deferred(Exit.die(new Error(`decryption worker failed: ${reason}`)))
    }
    if (replacing) {
      const replacement = this.#spawn(slot)
      this.#workers[slot] = replacement
      for (const [owner, keys] of this.#keys) replacement.postMessage({ type: "keys", owner, keys })
    }
  }
}
