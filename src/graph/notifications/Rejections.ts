/**
 * Refused notifications are counted per item (connector_notifications_rejected_total) but logged once per request or
 * decrypted chunk: one line with how many items, why, and a clipped sample. A flood of forged items therefore costs a
 * line, not a line per item; the log gate (connector/LogRepeats.ts) rate-limits repeated lines of the same kind.
 */
import { Effect, Metric } from "effect"
import { notificationsRejected } from "../../domain/Metrics.ts"
import { clip, count } from "../../domain/LogText.ts"

export type RejectReason =
  | "malformed"
  | "too_large"
  | "unknown_subscription"
  | "client_state"
  | "hmac"
  | "decrypt"
  | "validation_token"
  | "stale"
  | "overflow"
  | "client_gone"

export const countRejected = (reason: RejectReason, n = 1) =>
  Metric.update(Metric.withAttributes(notificationsRejected, { reason }), n)

/** One refused request (or batch), counted once and logged as one line. */
export const logRejected = (reason: RejectReason, message: string, annotations: Record<string, unknown> = {}) =>
  Effect.logWarning(`notification rejected (${reason}): ${clip(message, 300)}`).pipe(
    Effect.annotateLogs({ reason, logKey: `notification rejected:${reason}`, ...annotations }),
    Effect.andThen(countRejected(reason))
  )

/**
 * The refused items of one request or chunk: added item by item, counted and logged as one line at the end. Made for
 * every POST and chunk, nearly all of which refuse nothing: it holds nothing until the first refusal.
 */
class Rejections {
  #byReason: Map<RejectReason, number> | undefined
  #firstMessage = ""
  #sample: Readonly<Record<string, unknown>> = {}
  #total = 0

  add(reason: RejectReason, message: string, about: Readonly<Record<string, unknown>> = {}, n = 1): void {
    if (n <= 0) return
    if (this.#total === 0) {
      this.#firstMessage = message
      this.#sample = about
    }
    this.#total += n
    const byReason = (this.#byReason ??= new Map())
    byReason.set(reason, (byReason.get(reason) ?? 0) + n)
  }

  get total(): number {
    return this.#total
  }

  /**
   * Counts every refused item per reason and logs one line; `of` is the number of items the request carried. Nothing
   * refused (nearly every chunk) costs no effect built: this runs once per request and chunk.
   */
  report(of: number, note = ""): Effect.Effect<void> {
    const byReason = this.#byReason
    if (this.#total === 0 || byReason === undefined) return Effect.void
    const total = this.#total
    const firstMessage = this.#firstMessage
    const sample = this.#sample
    return Effect.gen(function*() {
      for (const [reason, n] of byReason) yield* countRejected(reason, n)
      const reasons = [...byReason.keys()].sort()
      const breakdown = [...byReason].map(([reason, n]) => `${reason} ${count(n)}`).join(", ")
      const example = Object.entries(sample).map(([key, value]) => `${key} "${clip(value, 60)}"`).join(", ")
      yield* Effect.logWarning(
        `notification rejected: ${count(total)} of ${count(of)} items (${breakdown}): ${clip(firstMessage, 300)}` +
          `${example === "" ? "" : `; e.g. ${example}`}${note}`
      ).pipe(Effect.annotateLogs({ reason: reasons[0]!, items: total, logKey: `notification rejected:${reasons.join(",")}` }))
    })
  }
}

export const makeRejections = (): Rejections => new Rejections()
