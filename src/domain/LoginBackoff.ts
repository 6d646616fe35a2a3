/**
 * Per-source backoff for password checks (the PBX's AppLogin, the status page's Basic auth): each failed login from a
 * source makes its next refusal wait longer, and after `refuseAfterFailures` failures the source is refused outright
 * for `refuseMillis`. A correct login resets its source; other sources are never affected. Pure: the caller passes the
 * time, so the policy is tested without a clock. The table of sources is bounded (least recently failing dropped first).
 */

export interface BackoffPolicy {
  /** Wait before answering the first failed login; doubles with every further failure. */
  readonly firstDelayMillis: number
  readonly maxDelayMillis: number
  /** Failures (without a success in between) after which the source is refused for `refuseMillis`. */
  readonly refuseAfterFailures: number
  readonly refuseMillis: number
  /** A source that has not failed for this long starts again from zero. */
  readonly forgetMillis: number
  readonly maxSources: number
}

export const defaultBackoffPolicy: BackoffPolicy = {
  firstDelayMillis: 500,
  maxDelayMillis: 8_000,
  refuseAfterFailures: 10,
  refuseMillis: 5 * 60_000,
  forgetMillis: 15 * 60_000,
  maxSources: 10_000
}

export type Admission =
  | { readonly _tag: "Allow" }
  | { readonly _tag: "Refuse"; readonly retryAfterMillis: number; readonly failures: number }

export interface Failure {
  /** How long to hold the answer to this failed login. */
  readonly delayMillis: number
  readonly failures: number
  /** This failure started a refusal period. */
  readonly refusedNow: boolean
}

interface Source {
  failures: number
  lastFailureAt: number
  refusedUntil: number
}

export const delayFor = (policy: BackoffPolicy, failures: number): number =>
  Math.min(policy.maxDelayMillis, policy.firstDelayMillis * 2 ** Math.max(0, failures - 1))

export const makeLoginBackoff = (policy: BackoffPolicy = defaultBackoffPolicy) => {
  const sources = new Map<string, Source>()

  const current = (source: string, now: number): Source | undefined => {
    const entry = sources.get(source)
    if (entry === undefined) return undefined
    const refusalOver = entry.refusedUntil > 0 && entry.refusedUntil <= now
    if (refusalOver || now - entry.lastFailureAt >= policy.forgetMillis) {
      sources.delete(source)
      return undefined
    }
    return entry
  }

  /** Whether a login attempt from `source` is looked at at all. */
  const admit = (source: string, now: number): Admission => {
    const entry = current(source, now)
    return entry !== undefined && entry.refusedUntil > now
      ? { _tag: "Refuse", retryAfterMillis: entry.refusedUntil - now, failures: entry.failures }
      : { _tag: "Allow" }
  }

  /** Records a failed login; the answer to it is to be held back by the returned delay. */
  const fail = (source: string, now: number): Failure => {
    const entry = current(source, now) ?? { failures: 0, lastFailureAt: now, refusedUntil: 0 }
    entry.failures++
    entry.lastFailureAt = now
    const refusedNow = entry.failures >= policy.refuseAfterFailures && entry.refusedUntil === 0
    if (refusedNow) entry.refusedUntil = now + policy.refuseMillis
    // Re-inserted, so the map's order is the order of last failure: the first key is the one to drop.
    sources.delete(source)
    sources.set(source, entry)
    if (sources.size > policy.maxSources) sources.delete(sources.keys().next().value!)
    return { delayMillis: delayFor(policy, entry.failures), failures: entry.failures, refusedNow }
  }

  const succeed = (source: string): void => void sources.delete(source)

  return { admit, fail, succeed, size: () => sources.size, policy }
}

export type LoginBackoff = ReturnType<typeof makeLoginBackoff>
