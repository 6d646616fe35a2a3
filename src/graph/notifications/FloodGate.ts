/**
 * Whether a rich item can still be decrypted within the latency budget, or its user's presence should be read instead
 * (getPresencesByUserId; src/graph/presence/FloodFallback.ts). Each rich item costs one RSA unwrap, so in a flood the
 * decryption backlog, not the code, decides the latency: this tracks the items handed to the decrypt workers and not
 * yet back, and measures how fast the workers drain them. The decision is the backlog's expected drain time against
 * the budget; the drain rate is measured only while the pool is saturated (every worker has work queued), where items
 * done per wall-clock time is the pool's throughput. Below that, the time an item spends on its way to a worker and
 * back, an idle worker, or a stall of the main thread (a collection, a large message) would read as a slow pool and
 * make a steady load look like a flood. Pure and synchronous; the caller passes the Clock's time.
 */

export interface FloodGateOptions {
  /** The longest an item may expect to wait for decryption; 0 turns the fallback off (everything is decrypted). */
  readonly latencyBudgetMillis: number
  /** Decrypt workers. */
  readonly workers: number
  /** The cost of one item on one worker before any is measured (µs): an RSA-2048 unwrap plus the rest, ≈ 350. */
  readonly initialMicrosPerItem: number
  /** Items in the pool from which it counts as saturated; default 50 per worker (one chunk's share each, twice). */
  readonly saturatedItems?: number
}

/** Busy time that makes one measurement of the drain rate (ms), and the weight of a new one. */
const sampleMillis = 200
const sampleWeight = 0.3

export class FloodGate {
  readonly #budgetMillis: number
  readonly #floorMicros: number
  readonly #ceilingMicros: number
  readonly #saturatedItems: number
  /** Items handed to decryption and not yet back. */
  #pending = 0
  /** Measured: wall-clock µs per item of the whole pool while it has work (all workers together). */
  #microsPerItem: number
  #lastEventAt: number | undefined
  #busyMillis = 0
  #doneInSample = 0

  constructor(options: FloodGateOptions) {
    this.#budgetMillis = options.latencyBudgetMillis
    this.#microsPerItem = options.initialMicrosPerItem / Math.max(1, options.workers)
    this.#floorMicros = this.#microsPerItem / 10
    this.#ceilingMicros = this.#microsPerItem * 10
    this.#saturatedItems = options.saturatedItems ?? 50 * Math.max(1, options.workers)
  }

  get budgetMillis(): number {
    return this.#budgetMillis
  }

  get pending(): number {
    return this.#pending
  }

  /** The pool's measured cost per item (µs of wall-clock time with every worker busy). */
  get microsPerItem(): number {
    return this.#microsPerItem
  }

  /** How long the last of `extra` more items would wait for decryption, at the measured rate (ms). */
  expectedWaitMillis(extra: number): number {
    return ((this.#pending + extra) * this.#microsPerItem) / 1000
  }

  /**
   * Of `count` new items, how many go to decryption: all of them while the backlog stays within the budget, else as
   * many as still fit (the rest are read instead).
   */
  admit(count: number): number {
    if (this.#budgetMillis <= 0) return count
    const fit = Math.floor((this.#budgetMillis * 1000) / this.#microsPerItem) - this.#pending
    return Math.max(0, Math.min(count, fit))
  }

  /** `count` items were handed to the decrypt workers at `now`. */
  started(count: number, now: number): void {
    this.#advance(now)
    this.#pending += count
  }

  /** `count` items came back from the decrypt workers at `now` (decrypted or failed). */
  finished(count: number, now: number): void {
    const saturated = this.#advance(now)
    this.#pending = Math.max(0, this.#pending - count)
    if (!saturated) return
    this.#doneInSample += count
    if (this.#busyMillis >= sampleMillis && this.#doneInSample > 0) {
      const measured = (this.#busyMillis * 1000) / this.#doneInSample
      const blended = this.#microsPerItem * (1 - sampleWeight) + measured * sampleWeight
      this.#microsPerItem = Math.min(this.#ceilingMicros, Math.max(this.#floorMicros, blended))
      this.#busyMillis = 0
      this.#doneInSample = 0
    }
  }

  /**
   * Only time with the pool saturated counts towards the rate (see above); true when the time since the last event
   * counted, so that the items finished now belong to the sample.
   */
  #advance(now: number): boolean {
    const saturated = this.#pending >= this.#saturatedItems && this.#lastEventAt !== undefined
    if (saturated) this.#busyMillis += Math.max(0, now - this.#lastEventAt!)
    this.#lastEventAt = now
    return saturated
  }
}
