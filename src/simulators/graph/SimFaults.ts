/**
 * Faults the Graph simulator can be told to inject (429 storms, 5xx bursts, latency, token outage) and the counters
 * tests and benchmarks read.
 */
import { Effect } from "effect"
import { SimHttpError } from "./SimHttp.ts"

export interface SimFaults {
  /** The next `count` Graph requests are answered 429 with this Retry-After. */
  throttle: { count: number; retryAfterSeconds: number }
  /** The next `count` Graph requests are answered with `status` (5xx). */
  serverErrors: { count: number; status: number }
  /** Added before every answer (Graph and identity platform). */
  latencyMillis: number
  /** The token and device-code endpoints answer 503. */
  tokenOutage: boolean
}

export interface SimCounters {
  readonly requestsByRoute: Readonly<Record<string, number>>
  readonly tokensIssued: number
  readonly throttled: number
}

export interface SimFaultControl {
  readonly faults: SimFaults
  clearFaults(): void
  /** Applies latency and the Graph faults (429 storm, 5xx burst) to one Graph request. */
  graphFaults: Effect.Effect<void, SimHttpError>
  count(route: string): void
  countTokenIssued(): void
  countThrottled(): void
  counters(): SimCounters
}

export const makeSimFaults = (): SimFaultControl => {
  const requestsByRoute: Record<string, number> = {}
  let tokensIssued = 0
  let throttled = 0
  // One object, mutated in place: the control routes and the handle set its fields while routes read them.
  const faults: SimFaults = {
    throttle: { count: 0, retryAfterSeconds: 1 },
    serverErrors: { count: 0, status: 503 },
    latencyMillis: 0,
    tokenOutage: false
  }

  const graphFaults = Effect.gen(function*() {
    if (faults.latencyMillis > 0) yield* Effect.sleep(faults.latencyMillis)
    if (faults.throttle.count > 0) {
      faults.throttle.count--
      throttled++
      return yield* new SimHttpError({
        status: 429,
        code: "TooManyRequests",
        message: "Please retry again later.",
        retryAfterSeconds: faults.throttle.retryAfterSeconds
      })
    }
    if (faults.serverErrors.count > 0) {
      faults.serverErrors.count--
      return yield* new SimHttpError({
        status: faults.serverErrors.status,
        code: faults.serverErrors.status === 503 ? "serviceNotAvailable" : "generalException",
        message: "The service is temporarily unavailable."
      })
    }
  })

  return {
    faults,
    clearFaults: () => {
      faults.throttle.count = 0
      faults.serverErrors.count = 0
      faults.latencyMillis = 0
      faults.tokenOutage = false
    },
    graphFaults,
    count: (route) => {
      requestsByRoute[route] = (requestsByRoute[route] ?? 0) + 1
    },
    countTokenIssued: () => {
      tokensIssued++
    },
    countThrottled: () => {
      throttled++
    },
    counters: () => ({ requestsByRoute: { ...requestsByRoute }, tokensIssued, throttled })
  }
}
