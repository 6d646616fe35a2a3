/**
 * What the Graph side last knew of each served Teams user's presence, and the one place two decisions are taken about
 * a presence that arrives (pushed or read): whether it is stale (by sequenceNumber) and whether it changes anything.
 * Pure state and transitions, keyed by `teamsKey`; the presence source publishes what `apply` returns.
 */
import type { Tracer } from "effect"
import type { GraphPresence } from "../../domain/Presence.ts"
import { teamsKey } from "../../domain/TeamsId.ts"

export type PresenceOrigin = "push" | "poll" | "reconcile" | "initial"

export interface PresenceChange {
  readonly userId: string
  readonly presence: GraphPresence
  /** Milliseconds on the Clock when the change was received. */
  readonly receivedAt: number
  readonly origin: PresenceOrigin
  /** For a rich notification: milliseconds on the Clock when it was decrypted. */
  readonly decryptedAt?: number
  /** For a rich notification: its decryption's span, so that the change's trace goes on (webhook → … → SetPresence). */
  readonly span?: Tracer.AnySpan | undefined
}

/** A presence as it reached the connector: read, or pushed (then also when it was decrypted). */
export interface ReceivedPresence {
  readonly presence: GraphPresence
  readonly receivedAt: number
  /**
   * For a read in place of pushed items (FloodFallback.ts): when it was issued. Every item pushed before that time
   * describes an older presence than the one read, so it is obsolete (see `isObsolete`).
   */
  readonly requestedAt?: number
  readonly decryptedAt?: number
  readonly span?: Tracer.AnySpan | undefined
}

/**
 * Whether a presence numbered `next` must not replace the one applied, numbered `last`. Graph's sequenceNumber grows
 * with every change of a user's presence and compares as a string; a presence without one is never stale. A pushed
 * item numbered like the applied one is a duplicate (Graph delivers again what it is not sure arrived), so it is
 * stale too; a read numbered like it is the same presence read again.
 */
export const isStale = (last: string | null | undefined, next: string | null | undefined, origin: PresenceOrigin): boolean => {
  if (last == null || last === "" || next == null || next === "") return false
  return origin === "push" ? next <= last : next < last
}

/**
 * Whether a pushed item received at `receivedAt` is made obsolete by a read issued at `readAt`: Graph notifies after a
 * change, so a read issued after the item arrived returns that change or a later one. Used only where the
 * sequenceNumbers cannot decide (one of them is missing): they are Graph's own order and always come first.
 */
export const isObsolete = (readAt: number | undefined, receivedAt: number): boolean => readAt !== undefined && receivedAt <= readAt

const numbered = (sequenceNumber: string | null | undefined): boolean => sequenceNumber != null && sequenceNumber !== ""

/** Equal as JSON; two strings (the usual availability and activity) without serialising them. */
const sameJson = (a: unknown, b: unknown): boolean =>
  typeof a === "string" || typeof b === "string" ? a === b : JSON.stringify(a ?? null) === JSON.stringify(b ?? null)

/**
 * Whether two presences show the same thing. Availability and activity first: they differ for almost every change, so
 * the hot path of a burst serialises nothing.
 */
export const sameContent = (a: GraphPresence, b: GraphPresence): boolean =>
  sameJson(a.availability, b.availability) && sameJson(a.activity, b.activity) &&
  sameJson(a.statusMessage, b.statusMessage) && sameJson(a.outOfOfficeSettings, b.outOfOfficeSettings)

export interface Applied {
  /** The presences that differ from what was known, in arrival order. */
  readonly changes: ReadonlyArray<PresenceChange>
  /** Pushed presences refused as older than or a duplicate of the one applied. */
  readonly stale: ReadonlyArray<GraphPresence>
}

export class PresenceState {
  #users: ReadonlyArray<string> = []
  #keys = new Set<string>()
  readonly #known = new Map<string, GraphPresence>()
  /** When the last read in place of pushed items was issued, per user (only users read that way, in a flood). */
  readonly #readAt = new Map<string, number>()

  /** The served users, as the plan names them. */
  get users(): ReadonlyArray<string> {
    return this.#users
  }

  has(userId: string): boolean {
    return this.#keys.has(teamsKey(userId))
  }

  /** Replaces the served users and forgets the presences of those who left; returns those who joined. */
  setUsers(userIds: ReadonlyArray<string>): ReadonlyArray<string> {
    const added = userIds.filter((id) => !this.#keys.has(teamsKey(id)))
    this.#users = [...userIds]
    this.#keys = new Set(this.#users.map(teamsKey))
    for (const key of [...this.#known.keys()]) if (!this.#keys.has(key)) this.#known.delete(key)
    for (const key of [...this.#readAt.keys()]) if (!this.#keys.has(key)) this.#readAt.delete(key)
    return added
  }

  /**
   * Applies `received` in order: a presence of a user not served is ignored, a stale one refused (by sequenceNumber;
   * where one is missing, a pushed item received before a read in its place was issued), one that shows the same as
   * the known one only remembered (its sequenceNumber moves on), and every other one is a change.
   */
  apply(received: ReadonlyArray<ReceivedPresence>, origin: PresenceOrigin): Applied {
    const changes: Array<PresenceChange> = []
    const stale: Array<GraphPresence> = []
    for (const { decryptedAt, presence, receivedAt, requestedAt, span } of received) {
      const key = teamsKey(presence.id)
      if (!this.#keys.has(key)) continue
      const last = this.#known.get(key)
      if (last !== undefined && this.#refuses(key, last, presence, receivedAt, decryptedAt, origin)) {
        if (origin === "push") stale.push(presence)
        continue
      }
      if (requestedAt !== undefined) this.#readAt.set(key, requestedAt)
      if (last !== undefined && sameContent(last, presence)) {
        this.#known.set(key, presence)
        continue
      }
      this.#known.set(key, presence)
      changes.push({
        userId: presence.id,
        presence,
        receivedAt,
        origin,
        ...(decryptedAt !== undefined ? { decryptedAt } : {}),
        ...(span !== undefined ? { span } : {})
      })
    }
    return { changes, stale }
  }

  /** Stale by sequenceNumber; where either number is missing, a pushed item made obsolete by a later-issued read. */
  #refuses(
    key: string,
    last: GraphPresence,
    next: GraphPresence,
    receivedAt: number,
    decryptedAt: number | undefined,
    origin: PresenceOrigin
  ): boolean {
    if (numbered(last.sequenceNumber) && numbered(next.sequenceNumber)) return isStale(last.sequenceNumber, next.sequenceNumber, origin)
    return origin === "push" && decryptedAt !== undefined && isObsolete(this.#readAt.get(key), receivedAt)
  }
}
