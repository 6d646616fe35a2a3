/**
 * Whether a rich item can still be decrypted within the latency budget, or its user's presence should be read instead
 * (getPresencesByUserId; src/graph/presence/FloodFallback.ts). Each rich item costs one RSA unwrap, so in a flood the
 * decryption backlog, not the code, decides the latency: this tracks the items handed to the decrypt workers and not
 * yet back, and predicts when a new item would come back — the time it has already waited since its POST arrived,
 * plus the backlog ahead of it and itself at the pool's speed. An item is decrypted only while that prediction stays
 * within the budget, so the fallback starts before the budget is exceeded, not after.
 *
 * The gate is asked at intake (`admit`), against the whole backlog, held and with the workers; and again for the items
 * still held whenever the workers report their speed (`reviewHeld`) and when a held chunk's turn comes
 * (`dispatchable`): the workers may have slowed down since the intake decision (a flood's first POSTs are admitted at
 * the quiet machine's speed, and the flood itself then takes the cores), and what no longer fits is read at once
 * instead of waiting for its turn.
 *
 * The speed is what the workers report: each times its own chunks (wall-clock time inside the worker, so a core shared
 * with other work shows as a slower item at once), and `measured` takes the workers' running figure after every chunk.
 * Nothing outside the workers — the way to a worker and back, an idle worker, a stall of the main thread — counts, so
 * a steady load never looks like a flood, and the first chunk of a flood already corrects the starting guess.
 *
 * Once items are read instead, the backlog stands at the budget: every decrypted item of a flood waits about that long
 * before decryption, and the time after it (publication, the PBX write, behind the flood's other work on the main
 * thread) comes on top. So while items are read instead, and until `floodQuietMillis` pass without any, the gate keeps
 * the shorter flood budget (`floodBudgetMillis`): a load that never goes over the whole budget is decided as before,
 * a flood keeps a shorter backlog and reads more of its users (docs/performance.md, "A shorter backlog in a flood" and
 * "rich-flood-10k in the whole bench").
 * Pure and synchronous; the caller passes the time an item has waited and the Clock's time (`at`, `divertedAt`).
 */
import { teamsKey } from "../../domain/TeamsId.ts"

export interface FloodGateOptions {
  /** The longest an item may expect to wait, from its POST's arrival until it is decrypted; 0 turns the fallback off. */
  readonly latencyBudgetMillis: number
  /** Decrypt workers. */
  readonly workers: number
  /** The cost of one item on one worker before any is measured (µs): an RSA-2048 unwrap plus the rest, ≈ 350. */
  readonly initialMicrosPerItem: number
  /** The budget while items are being read instead (a flood); by default `floodBudgetShare` of the budget. */
  readonly floodBudgetMillis?: number | undefined
}

/**
 * The flood budget's share of the whole budget: a 200 ms budget keeps a flood's backlog at 50 ms. A decrypted item of a
 * flood still waits behind the flood's other work on the main thread and the PBX writes, and a shorter backlog reads
 * more users (a read costs the connector far less than an RSA unwrap), which leaves the cores to that work
 * (docs/performance.md, "rich-flood-10k in the whole bench").
 */
export const floodBudgetShare = 0.25

/** The weight of a new chunk's timing in the workers' running figure (a chunk is 50 items, ≈ 10–20 ms of work). */
export const chunkWeight = 0.25

/**
 * The running figure of one item's cost on one worker (µs) after a chunk of `items` took `micros` inside a worker: an
 * exponential average over chunks, so that a change of the machine's load shows within a few chunks.
 */
export const blendItemCost = (previous: number | undefined, items: number, micros: number): number | undefined => {
  if (items <= 0 || !(micros >= 0)) return previous
  const sample = micros / items
  return previous === undefined ? sample : previous * (1 - chunkWeight) + sample * chunkWeight
}

export class FloodGate {
  readonly #budgetMillis: number
  readonly #floodBudgetMillis: number
  /** Clock milliseconds until which the flood budget holds (`floodQuietMillis` after the last item read instead). */
  #floodUntil: number | undefined
  readonly #workers: number
  readonly #floorMicros: number
  readonly #ceilingMicros: number
  /** Items admitted to decryption and not yet back (held, or with the workers). */
  #pending = 0
  /** Of those, the items handed to the workers. */
  #withWorkers = 0
  /** One item on one worker (µs), as the workers last reported it. */
  #itemMicros: number

  constructor(options: FloodGateOptions) {
    this.#budgetMillis = options.latencyBudgetMillis
    this.#floodBudgetMillis = Math.min(options.latencyBudgetMillis, options.floodBudgetMillis ?? options.latencyBudgetMillis * floodBudgetShare)
    this.#workers = Math.max(1, options.workers)
    this.#itemMicros = options.initialMicrosPerItem
    this.#floorMicros = options.initialMicrosPerItem / 10
    this.#ceilingMicros = options.initialMicrosPerItem * 100
  }

  get budgetMillis(): number {
    return this.#budgetMillis
  }

  /** The budget the decisions use now: the flood budget while items are being read instead, else the whole one. */
  get currentBudgetMillis(): number {
    return this.#floodUntil === undefined ? this.#budgetMillis : this.#floodBudgetMillis
  }

  /** Items were read instead at `now` (Clock ms): the flood budget holds until `floodQuietMillis` pass without any. */
  divertedAt(now: number): void {
    if (this.#budgetMillis > 0) this.#floodUntil = now + floodQuietMillis
  }

  /** The Clock's time (ms) of the decisions that follow: the flood budget lapses once its quiet time has passed. */
  at(now: number): this {
    if (this.#floodUntil !== undefined && now >= this.#floodUntil) this.#floodUntil = undefined
    return this
  }

  get pending(): number {
    return this.#pending
  }

  get withWorkers(): number {
    return this.#withWorkers
  }

  /** The pool's cost per item: wall-clock µs per item with every worker busy (one item's cost over the workers). */
  get microsPerItem(): number {
    return this.#itemMicros / this.#workers
  }

  /** How long the last of `extra` more items would wait for decryption, at the measured speed (ms). */
  expectedWaitMillis(extra: number): number {
    return ((this.#pending + extra) * this.microsPerItem) / 1000
  }

  /**
   * Of `count` new items that arrived `waitedMillis` ago, how many go to decryption: those whose predicted return —
   * the wait so far plus the backlog ahead and themselves — is within the budget (the rest are read instead).
   */
  admit(count: number, waitedMillis = 0): number {
    return this.#fit(count, waitedMillis, this.#pending)
  }

  /**
   * Of `count` admitted items held since their POST arrived `waitedMillis` ago, how many still come back within the
   * budget if handed to the workers now, behind only what the workers hold (the rest are read instead).
   */
  dispatchable(count: number, waitedMillis: number): number {
    return this.#fit(count, waitedMillis, this.#withWorkers)
  }

  /**
   * The held chunks, in order, checked again (after the workers' speed changed): how many items of each still come back
   * within the budget behind what the workers hold and the items kept ahead of it (the rest are read instead, at once).
   */
  reviewHeld(held: ReadonlyArray<{ readonly items: number; readonly waitedMillis: number }>): Array<number> {
    let ahead = this.#withWorkers
    return held.map(({ items, waitedMillis }) => {
      const fit = this.#fit(items, waitedMillis, ahead)
      ahead += fit
      return fit
    })
  }

  #fit(count: number, waitedMillis: number, ahead: number): number {
    if (this.#budgetMillis <= 0) return count
    const room = this.currentBudgetMillis - Math.max(0, waitedMillis)
    if (room <= 0) return 0
    const fit = Math.floor((room * 1000) / this.microsPerItem) - ahead
    return Math.max(0, Math.min(count, fit))
  }

  /** `count` items were admitted to decryption. */
  started(count: number): void {
    this.#pending += count
  }

  /** `count` admitted items were handed to the decrypt workers. */
  dispatched(count: number): void {
    this.#withWorkers += count
  }

  /** `count` admitted items were read instead before they reached the workers. */
  withdrawn(count: number): void {
    this.#pending = Math.max(0, this.#pending - count)
  }

  /** `count` items came back from the decrypt workers (decrypted or failed). */
  finished(count: number): void {
    this.#pending = Math.max(0, this.#pending - count)
    this.#withWorkers = Math.max(0, this.#withWorkers - count)
  }

  /** The workers' running figure of one item's cost on one worker (µs), `blendItemCost`; kept within sane bounds. */
  measured(itemMicros: number | undefined): void {
    if (itemMicros === undefined || !Number.isFinite(itemMicros)) return
    this.#itemMicros = Math.min(this.#ceilingMicros, Math.max(this.#floorMicros, itemMicros))
  }
}

/**
 * How many of `count` rich items go to decryption. Reading a user's presence instead shortens only the wait for
 * decryption, and each read costs the main thread a Graph request: so items are diverted only while the decryption
 * backlog itself is over the budget (`admit` without the time waited), and then as many as the time their
 * POST already waited leaves room for. A POST that waited on the main thread — behind other POSTs in the processor or
 * the listen queue, as with many tenants of a few items each — while the decryption backlog is short is decrypted
 * whole: its reads would add to the main thread's work, and, split over many tenants, become many small requests.
 * The backlog is the workers' (`poolPending`): with the tenants of one process sharing them, the items of the other
 * tenants ahead count as time already waited (a tenant's gate counts only its own).
 */
export const admitWhenDecryptionIsBehind = (gate: FloodGate, count: number, waitedMillis: number, poolPending = gate.withWorkers): number => {
  // The pool holds this tenant's dispatched items (its held ones wait here and are in `gate.pending` already).
  const othersMillis = (Math.max(0, poolPending - gate.withWorkers) * gate.microsPerItem) / 1000
  return gate.admit(count, othersMillis) >= count ? count : gate.admit(count, waitedMillis + othersMillis)
}

/**
 * The fewest rich items worth reading instead of decrypting at once. A read is a Graph request (a getPresencesByUserId
 * of up to 650 users, answered over the main thread), while decrypting an item costs a worker ≈ 0.2–1 ms: reading one
 * or two users costs more than decrypting them, and what so few items would spare the backlog is a millisecond or
 * two. Fewer items than this are decrypted even when late (with many tenants of a few items per POST, a POST that
 * waited on a busy main thread would otherwise become a read of its one or two users); a flood's POSTs carry many
 * more.
 */
export const minItemsPerRead = 20

/**
 * `splitFlood`, but only when the read spares at least `minimum` items of decryption (`minItemsPerRead`); else every
 * item is decrypted.
 */
export const splitWhenWorthReading = <A>(
  items: ReadonlyArray<A>,
  admitted: number,
  userOf: (item: A) => string | undefined,
  minimum = minItemsPerRead
): FloodSplit<A> => {
  // Fewer items than the minimum in all (a POST of many tenants' few) cannot spare enough: nothing to split.
  if (items.length < minimum) return { decrypt: items, read: [], diverted: 0 }
  const split = splitFlood(items, admitted, userOf)
  return split.diverted >= minimum ? split : { decrypt: items, read: [], diverted: 0 }
}

/**
 * One flood episode for the log: it starts with the first item read instead, and ends once a POST is decrypted whole
 * at least `quietMillis` after the last item read instead — so a flood that diverts now and then logs two lines, not
 * two per POST. Pure; the caller passes the Clock's time.
 */
export class FloodEpisode {
  readonly #quietMillis: number
  /** Items read instead in this episode (0: none under way). */
  #diverted = 0
  #lastDivertedAt = 0

  constructor(quietMillis: number) {
    this.#quietMillis = quietMillis
  }

  get diverted(): number {
    return this.#diverted
  }

  /** `items` were read instead at `now`; true when this starts an episode. */
  divert(items: number, now: number): boolean {
    if (items <= 0) return false
    const starts = this.#diverted === 0
    this.#diverted += items
    this.#lastDivertedAt = now
    return starts
  }

  /** A POST was decrypted whole at `now`: the items read instead in the episode that ends now, or undefined. */
  decryptedWhole(now: number): number | undefined {
    if (this.#diverted === 0 || now - this.#lastDivertedAt < this.#quietMillis) return undefined
    const diverted = this.#diverted
    this.#diverted = 0
    return diverted
  }
}

/** How long without an item read instead ends a flood episode (FloodEpisode). */
export const floodQuietMillis = 1_000

/** How a POST's rich items go on: decrypted, or their users read (with how many of them were read, not decrypted). */
export interface FloodSplit<A> {
  readonly decrypt: ReadonlyArray<A>
  readonly read: ReadonlyArray<string>
  /** Items whose users are read instead: those beyond what the gate admitted, and admitted ones a read makes obsolete. */
  readonly diverted: number
}

/**
 * Splits a POST's rich items after the gate admitted the first `admitted`: the users of the others are read. A read is
 * issued after the whole POST arrived, so it shows every change the POST carries for its users: an admitted item of a
 * user who is read anyway would be decrypted for nothing (and dropped as obsolete afterwards), so it is not decrypted
 * either (latest wins). An item that names no user cannot be read and is decrypted whatever the backlog.
 */
export const splitFlood = <A>(items: ReadonlyArray<A>, admitted: number, userOf: (item: A) => string | undefined): FloodSplit<A> => {
  if (admitted >= items.length) return { decrypt: items, read: [], diverted: 0 }
  const read = new Map<string, string>()
  for (const item of items.slice(admitted)) {
    const userId = userOf(item)
    if (userId !== undefined) read.set(teamsKey(userId), userId)
  }
  const decrypt = items.filter((item, i) => {
    const userId = userOf(item)
    return userId === undefined || (i < admitted && !read.has(teamsKey(userId)))
  })
  return { decrypt, read: [...read.values()], diverted: items.length - decrypt.length }
}
