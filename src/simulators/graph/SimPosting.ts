/**
 * How the simulated Graph POSTs a batch of notification items to one endpoint (docs/protocol-notes.md): the
 * endpoint judged first by its recent answers (SimEndpoints.ts: delayed 10 minutes or dropped when too many were
 * slow), the validation tokens of the batch's rich items added, an answer other than 2xx within 3 s not counted as
 * delivered and the POST sent again with backoff.
 *
 * The first attempt of a POST to an endpoint in good standing runs as a plain promise; a fiber is forked only for what
 * waits on the Clock (a delayed endpoint, the retries). With many simulated tenants nearly every change is a POST of
 * its own, and a fiber per POST was a large part of the simulator's CPU, taken from the connector it tests on the
 * same cores (docs/performance.md, "Fifth round: the simulators' cost per change").
 */
import { Clock, type Context, Effect } from "effect"
import { EndpointWindow, type EndpointStats } from "./SimEndpoints.ts"
import type { SimJwks } from "./SimJwks.ts"
import type { NotificationItem } from "./notify/payloads.ts"
import type { SimSubscription } from "./SimSubscriptions.ts"
import { webhookClient } from "./SimWebhookClient.ts"

export interface DeliveryOptions {
  /** Items are collected this long (or up to `maxBatch`) before a POST. */
  readonly batchWindowMillis: number
  readonly maxBatch: number
  /** Graph's HTTP client gives up after 3 s: a POST not answered by then is not delivered. */
  readonly answerTimeoutMillis: number
  readonly slowMillis: number
  /** POSTs counted before an endpoint's share of slow answers can delay or drop its notifications. */
  readonly minSamples: number
  readonly windowMillis: number
  /** How long Graph holds back notifications for a "delayed" endpoint (10 min). */
  readonly delayMillis: number
  readonly retries: number
  readonly retryBaseMillis: number
  readonly validationTimeoutMillis: number
}

/** What POSTing needs: the options, the validation tokens, the endpoints' recent answers, the counters. */
export interface Posting {
  readonly options: DeliveryOptions
  readonly jwks: SimJwks["Service"]
  readonly endpoints: Map<string, EndpointWindow>
  readonly count: { posts: number; itemsDelivered: number; itemsDropped: number; lifecycleSent: number }
  /** The simulator's Clock (TestClock in tests), read outside fibers. */
  readonly clock: Clock.Clock
  /** Runs an effect in a fiber of its own with the simulator's services (the retries of a plain first attempt). */
  readonly fork: (effect: Effect.Effect<unknown>) => void
}

export const makePosting = Effect.fnUntraced(function*(options: DeliveryOptions, jwks: SimJwks["Service"]) {
  const context: Context.Context<never> = yield* Effect.context<never>()
  const run = Effect.runForkWith(context)
  const posting: Posting = {
    options,
    jwks,
    endpoints: new Map(),
    count: { posts: 0, itemsDelivered: 0, itemsDropped: 0, lifecycleSent: 0 },
    clock: yield* Clock.Clock,
    fork: (effect) => void run(effect.pipe(Effect.catchCause((cause) => Effect.logError("simulator delivery failed", cause))))
  }
  return posting
})

/** An endpoint's recent POSTs: slow ones decide whether Graph delays or drops its notifications. */
const endpointOf = (posting: Posting, url: string): EndpointWindow => {
  let endpoint = posting.endpoints.get(url)
  if (endpoint === undefined) {
    endpoint = new EndpointWindow()
    posting.endpoints.set(url, endpoint)
  }
  return endpoint
}

export const endpointStats = (posting: Posting, url: string, now: number): EndpointStats =>
  endpointOf(posting, url).stats(url, now, posting.options)

/** One POST with Graph's timing; resolves whether it was answered 2xx (never rejects). */
const post = (posting: Posting, url: string, body: string): Promise<boolean> => {
  const started = posting.clock.currentTimeMillisUnsafe()
  return webhookClient.post(url, { headers: { "content-type": "application/json" }, body, timeoutMillis: posting.options.answerTimeoutMillis })
    .then((response) => response.status >= 200 && response.status < 300, () => false)
    .then((ok) => {
      const ended = posting.clock.currentTimeMillisUnsafe()
      endpointOf(posting, url).record(ended, ended - started > posting.options.slowMillis, !ok)
      posting.count.posts++
      return ok
    })
}

/** One POST of `body` (JSON), in a fiber. */
export const postOnce = (posting: Posting, url: string, body: unknown): Effect.Effect<boolean> =>
  Effect.callback<boolean>((resume) => {
    void post(posting, url, JSON.stringify(body)).then((ok) => resume(Effect.succeed(ok)))
  })

/** The app and tenant pairs of a batch's rich items: one validation token each. */
const pairsOf = (rich: ReadonlyArray<SimSubscription>) =>
  rich.length <= 1 ? rich : [...new Map(rich.map((s) => [`${s.applicationId}|${s.tenantId}`, s] as const)).values()]

const bodyWith = (items: ReadonlyArray<NotificationItem>, validationTokens: ReadonlyArray<string>) =>
  JSON.stringify(validationTokens.length > 0 ? { value: items, validationTokens } : { value: items })

/** The POST's body: the items, and one validation token per app and tenant of its rich items. */
const bodyOf = Effect.fnUntraced(function*(posting: Posting, items: ReadonlyArray<NotificationItem>, rich: ReadonlyArray<SimSubscription>) {
  return bodyWith(items, yield* Effect.forEach(pairsOf(rich), (s) => posting.jwks.validationToken(s.applicationId, s.tenantId)))
})

/** The body at once when every token it needs is one being sent again (nearly always), else undefined. */
const bodyNow = (posting: Posting, items: ReadonlyArray<NotificationItem>, rich: ReadonlyArray<SimSubscription>, now: number) => {
  const tokens: Array<string> = []
  for (const s of pairsOf(rich)) {
    const token = posting.jwks.signedToken(s.applicationId, s.tenantId, now)
    if (token === undefined) return undefined
    tokens.push(token)
  }
  return bodyWith(items, tokens)
}

/** After attempt `failed` (0 = the first) was not answered 2xx: waits, sends again, up to `retries` times. */
const retryAfter = Effect.fnUntraced(function*(posting: Posting, url: string, body: string, items: number, failed: number) {
  const { count, options } = posting
  for (let attempt = failed + 1; ; attempt++) {
    yield* Effect.sleep(options.retryBaseMillis * 2 ** (attempt - 1))
    if (attempt > options.retries) break
    if (yield* Effect.callback<boolean>((resume) => void post(posting, url, body).then((ok) => resume(Effect.succeed(ok))))) {
      count.itemsDelivered += items
      return true
    }
  }
  count.itemsDropped += items
  return false
})

/** One batch for one endpoint, in a fiber: the endpoint judged, the body built, POSTed and retried with backoff. */
export const deliver = Effect.fnUntraced(function*(
  posting: Posting,
  url: string,
  items: ReadonlyArray<NotificationItem>,
  rich: ReadonlyArray<SimSubscription>
) {
  const endpoint = endpointStats(posting, url, yield* Clock.currentTimeMillis)
  if (endpoint.state === "dropped") {
    posting.count.itemsDropped += items.length
    return false
  }
  if (endpoint.state === "delayed") yield* Effect.sleep(posting.options.delayMillis)
  const body = yield* bodyOf(posting, items, rich)
  if (yield* Effect.callback<boolean>((resume) => void post(posting, url, body).then((ok) => resume(Effect.succeed(ok))))) {
    posting.count.itemsDelivered += items.length
    return true
  }
  return yield* retryAfter(posting, url, body, items.length, 0)
})

/**
 * One batch for one endpoint, handed on without waiting for the answer: an endpoint in good standing gets its first
 * attempt as a plain promise (a fiber only for retries); a delayed or dropped one goes through `deliver`.
 */
export const send = (
  posting: Posting,
  url: string,
  items: ReadonlyArray<NotificationItem>,
  rich: ReadonlyArray<SimSubscription>
): Effect.Effect<void> =>
  Effect.suspend(() => {
    const now = posting.clock.currentTimeMillisUnsafe()
    if (endpointStats(posting, url, now).state !== "ok") {
      posting.fork(deliver(posting, url, items, rich))
      return Effect.void
    }
    const body = bodyNow(posting, items, rich, now)
    if (body === undefined) return Effect.map(bodyOf(posting, items, rich), (signed) => postFirst(posting, url, signed, items.length))
    postFirst(posting, url, body, items.length)
    return Effect.void
  })

/** The first attempt as a plain promise; the retries, if it is not answered 2xx, in a fiber. */
const postFirst = (posting: Posting, url: string, body: string, items: number): void =>
  void post(posting, url, body).then((ok) => {
    if (ok) posting.count.itemsDelivered += items
    else posting.fork(retryAfter(posting, url, body, items, 0))
  })
