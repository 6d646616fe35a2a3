/**
 * How the simulated Graph judges a webhook endpoint by its recent answers (docs/protocol-notes.md): over a window of
 * 10 minutes, after `minSamples` POSTs, ≥ 10 % slow answers (> 2.9 s) delay its notifications, ≥ 15 % drop them.
 * An endpoint keeps its POSTs in the order they ended with running counts, so judging it before each POST costs the
 * same for the thousandth POST of a burst as for the first.
 */

export interface EndpointStats {
  readonly url: string
  readonly posts: number
  readonly slow: number
  readonly failures: number
  readonly slowRatio: number
  readonly state: "ok" | "delayed" | "dropped"
}

export interface EndpointRules {
  readonly minSamples: number
  readonly windowMillis: number
}

interface Sample {
  readonly at: number
  readonly slow: boolean
  readonly failed: boolean
}

/** One endpoint's POSTs within the window, oldest first, with the slow and failed ones counted. */
export class EndpointWindow {
  private readonly samples: Array<Sample> = []
  /** Index of the oldest sample still in the window (those before it are out and no longer counted). */
  private first = 0
  private slow = 0
  private failed = 0

  /** A POST that ended at `at` (Clock milliseconds; each later than or equal to the one before). */
  record(at: number, slow: boolean, failed: boolean): void {
    this.samples.push({ at, slow, failed })
    if (slow) this.slow++
    if (failed) this.failed++
  }

  /** The POSTs that ended within the window before `now`, and what Graph does with the endpoint's notifications. */
  stats(url: string, now: number, rules: EndpointRules): EndpointStats {
    this.drop(now - rules.windowMillis)
    const posts = this.samples.length - this.first
    const ratio = posts === 0 ? 0 : this.slow / posts
    return {
      url,
      posts,
      slow: this.slow,
      failures: this.failed,
      slowRatio: ratio,
      state: posts < rules.minSamples ? "ok" : ratio >= 0.15 ? "dropped" : ratio >= 0.10 ? "delayed" : "ok"
    }
  }

  /** Forgets the POSTs that ended at or before `until`. */
  private drop(until: number): void {
    while (this.first < this.samples.length && this.samples[this.first]!.at <= until) {
      const gone = this.samples[this.first++]!
      if (gone.slow) this.slow--
      if (gone.failed) this.failed--
    }
    if (this.first > 1024 && this.first * 2 > this.samples.length) {
      this.samples.splice(0, this.first)
      this.first = 0
    }
  }
}
