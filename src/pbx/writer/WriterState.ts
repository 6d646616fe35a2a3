/**
 * The presence writer's state and its synchronous transitions. Per PBX user: the command wanted (`desired`, the latest
 * handed over), what a PBX confirmed and on which connection, and where the user is on its way out (ready, in flight,
 * changed while in flight). "Only what changed" on the PBX side is decided here, once: a write equal to the command
 * already held is dropped, and a user whose command the PBX confirmed on its current connection is not sent again.
 */
import type { Effect, Latch, Tracer } from "effect"
import { commandEquals, type PbxPresenceCommand } from "../../domain/PbxPresence.ts"

/** What a PBX confirmed for a user. Entries are replaced, never mutated: a reader may compare them by identity. */
export interface WrittenPresence {
  readonly command: PbxPresenceCommand
  readonly pbx: string
  /** Epoch milliseconds when the PBX confirmed the write; 0 when it was confirmed to an earlier process (`inherit`). */
  readonly sentAt: number
}

/** When a change reached the connector, and for a rich notification when it was decrypted (Clock milliseconds). */
export interface WriteMeta {
  readonly receivedAt?: number
  readonly decryptedAt?: number
  /** The change's span (its mapping): the SetPresence is a span below it, in the change's trace. */
  readonly span?: Tracer.AnySpan
}

export interface PresenceWrite {
  readonly guid: string
  readonly command: PbxPresenceCommand
  readonly meta?: WriteMeta | undefined
}

/** The command the writer holds for a user: sent, being sent, or waiting for its PBX. */
export interface DesiredPresence {
  readonly command: PbxPresenceCommand
  readonly receivedAt: number | undefined
  readonly decryptedAt: number | undefined
  /** The newest change's span, when it has one. */
  readonly span: Tracer.AnySpan | undefined
  /** Failed attempts for this command; reset by a new command. */
  readonly failures: number
}

/** A cluster writer's send fence (SendFence.ts): a command is sent again only once checked against the store. */
export interface Fence {
  /** Of these users' held commands, those this writer may still send; the others are forgotten. */
  readonly check: (held: ReadonlyMap<string, PbxPresenceCommand>) => Effect.Effect<ReadonlySet<string>, unknown>
  /** How long after its hand-over or check a command may be sent without another check. */
  readonly freshMs: number
  /** Users whose turn came without a fresh check: checked together in the next batch. */
  readonly waiting: Set<string>
  checking: boolean
  /** Opened when users wait. */
  readonly wake: Latch.Latch
}

/** `confirmedOn` of a confirmation inherited from an earlier process. */
const inherited = -1

export class WriterState {
  readonly desired = new Map<string, DesiredPresence>()
  readonly confirmed = new Map<string, WrittenPresence>()
  /** The connection each confirmed write was made on: a new connection of that PBX gets the user again. */
  private readonly confirmedOn = new Map<string, number>()
  /** The first connection of each PBX this process saw: the one that inherited confirmations hold for. */
  private readonly firstConnection = new Map<string, number>()
  /** Users waiting to be sent, oldest first. */
  private readonly ready = new ReadyQueue()
  private readonly inFlight = new Set<string>()
  /** Users changed while their write was in flight: they queue again when it is answered, so `take` is O(1). */
  private readonly again = new Set<string>()
  /** With a send fence (SendFence.ts): when each user's command was last handed over or checked (Clock milliseconds). */
  private readonly freshAt = new Map<string, number>()

  /**
   * Holds the writes whose command differs from the one held (latest wins); returns the users that changed. With
   * `now` (a fenced writer), every write counts as checked at `now`: its hand-over read it.
   */
  accept(writes: ReadonlyArray<PresenceWrite>, now?: number): Array<string> {
    const changed: Array<string> = []
    for (const { guid, command, meta } of writes) {
      if (now !== undefined) this.freshAt.set(guid, now)
      const previous = this.desired.get(guid)
      if (previous !== undefined && commandEquals(previous.command, command)) continue
      // The oldest change still waiting is what the delay to the PBX is measured from.
      const pending = previous !== undefined && (this.ready.has(guid) || this.again.has(guid))
      this.desired.set(guid, {
        command,
        receivedAt: pending ? previous.receivedAt ?? meta?.receivedAt : meta?.receivedAt,
        decryptedAt: pending ? previous.decryptedAt ?? meta?.decryptedAt : meta?.decryptedAt,
        span: meta?.span,
        failures: 0
      })
      changed.push(guid)
    }
    return changed
  }

  /** Queues users to be looked at by the dispatcher; false when there were none. */
  enqueue(guids: Iterable<string>): boolean {
    let any = false
    for (const guid of guids) {
      if (this.inFlight.has(guid)) this.again.add(guid)
      else this.ready.push(guid)
      any = true
    }
    return any
  }

  /** The next user to send, now counted in flight; undefined when none waits or `limit` are in flight. */
  take(limit: number): string | undefined {
    if (this.inFlight.size >= limit) return undefined
    const guid = this.ready.shift()
    if (guid !== undefined) this.inFlight.add(guid)
    return guid
  }

  /** A user's write is no longer in flight; if it changed meanwhile, it queues again. */
  release(guid: string): void {
    this.inFlight.delete(guid)
    if (this.again.delete(guid)) this.ready.push(guid)
  }

  /**
   * Whether this PBX connection already confirmed exactly this command for the user: nothing to send. A command an
   * earlier process had confirmed counts on the PBX's first connection here (the PBX kept it while the connector was
   * away); a later connection of that PBX gets the user again, as for any other confirmation.
   */
  alreadyConfirmed(guid: string, command: PbxPresenceCommand, pbx: string, connectionId: number): boolean {
    const last = this.confirmed.get(guid)
    if (last === undefined || !commandEquals(last.command, command)) return false
    const on = this.confirmedOn.get(guid)
    if (on !== inherited) return on === connectionId
    this.connectionUp(pbx, connectionId)
    return last.pbx === pbx && this.firstConnection.get(pbx) === connectionId
  }

  /** Notes a PBX connection; the first one of each PBX is the one inherited confirmations hold for. */
  connectionUp(pbx: string, connectionId: number): void {
    if (!this.firstConnection.has(pbx)) this.firstConnection.set(pbx, connectionId)
  }

  /** Commands the PBXs had confirmed to an earlier process (the state store's); a user already known here keeps its own. */
  inherit(commands: Iterable<{ readonly guid: string; readonly pbx: string; readonly command: PbxPresenceCommand }>): number {
    let count = 0
    for (const { guid, pbx, command } of commands) {
      if (this.confirmed.has(guid)) continue
      this.confirmed.set(guid, { command, pbx, sentAt: 0 })
      this.confirmedOn.set(guid, inherited)
      count++
    }
    return count
  }

  confirm(guid: string, command: PbxPresenceCommand, pbx: string, connectionId: number, sentAt: number): void {
    this.confirmed.set(guid, { command, pbx, sentAt })
    this.confirmedOn.set(guid, connectionId)
  }

  /** Whether the user's command was handed over or checked within `withinMs` of `now`; either way, that counts once. */
  takeFresh(guid: string, now: number, withinMs: number): boolean {
    const at = this.freshAt.get(guid)
    if (at === undefined) return false
    this.freshAt.delete(guid)
    return now - at <= withinMs
  }

  /** The user's command was checked at `now`: it may be sent once without another check. */
  markFresh(guid: string, now: number): void {
    this.freshAt.set(guid, now)
  }

  /**
   * The user's command is no longer this writer's to send (another PBX's holder writes the user now): nothing of it is
   * kept, not even what a PBX confirmed here, which another writer may have overwritten since. A queued turn finds
   * nothing to send.
   */
  forget(guid: string): void {
    this.desired.delete(guid)
    this.confirmed.delete(guid)
    this.confirmedOn.delete(guid)
    this.freshAt.delete(guid)
  }

  /** A refused attempt of `sent`: the entry with one more failure, or undefined when a newer command replaced it. */
  failed(guid: string, sent: DesiredPresence): DesiredPresence | undefined {
    const current = this.desired.get(guid)
    if (current === undefined || current.command !== sent.command) return undefined
    const failed = { ...current, failures: current.failures + 1 }
    this.desired.set(guid, failed)
    return failed
  }

  /** Nothing queued or in flight. */
  get quiet(): boolean {
    return this.ready.size === 0 && this.inFlight.size === 0 && this.again.size === 0
  }

  get inFlightCount(): number {
    return this.inFlight.size
  }
}

/** The ready queue: a FIFO of user guids without duplicates, O(1) push, shift and membership. */
class ReadyQueue {
  private items: Array<string> = []
  private head = 0
  private readonly members = new Set<string>()

  get size(): number {
    return this.members.size
  }

  has(guid: string): boolean {
    return this.members.has(guid)
  }

  push(guid: string): void {
    if (this.members.has(guid)) return
    this.members.add(guid)
    this.items.push(guid)
  }

  shift(): string | undefined {
    if (this.head >= this.items.length) return undefined
    const guid = this.items[this.head++]!
    this.members.delete(guid)
    // Drop the consumed prefix once it is most of the array, so memory stays proportional to what is queued.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return guid
  }
}
