/**
 * A connector's first-time work for rich notifications, done when it starts rather than on its first notification
 * (docs/performance.md, "The first notifications after a start", "tenants-50: each tenant's first notification"): the
 * validation-token signing keys are fetched and imported into the verifier's cache (`ValidationTokens.prime`), the
 * tenant's series of the per-notification metrics are made (`prepareNotificationSeries`), and one item the connector
 * encrypts for itself with its current certificate is decrypted by each decryption worker through the pool — the
 * worker's first use of the tenant's key and of the decryption code. Runs in the background; a failure is logged at
 * debug level only and changes nothing else: the first notification then does the same work as it would have.
 */
import { Context, Deferred, Effect, Layer } from "effect"
import { prepareNotificationSeries } from "../../../domain/Metrics.ts"
import { SubscriptionSettings } from "../../subscriptions/SubscriptionSettings.ts"
import { CertificateStore } from "./CertificateStore.ts"
import { DecryptPool } from "./DecryptPool.ts"
import { constantTimeEquals, encryptPayload, inspectCertificate } from "./RichCrypto.ts"
import { ValidationTokens } from "./ValidationTokens.ts"

/** What the warm-up did: whether the key set was fetched, and how many of the workers decrypted their item. */
export interface WarmUpOutcome {
  readonly jwksFetched: boolean
  readonly workersDecrypted: number
  readonly workers: number
}

const warmUpPlaintext = "{\"warmUp\":true}"

/** One item per worker, encrypted for the current certificate, through the pool; the number decrypted correctly. */
const warmUpWorkers = Effect.fnUntraced(function*(pool: DecryptPool["Service"], certificates: CertificateStore["Service"]) {
  const current = yield* certificates.current
  const { publicKey } = inspectCertificate(current.certificate)
  const item = {
    ...encryptPayload(publicKey, warmUpPlaintext),
    encryptionCertificateId: current.id,
    encryptionCertificateThumbprint: current.thumbprint
  }
  const results = yield* pool.decrypt(Array.from({ length: pool.size }, () => item))
  return results.filter((result) => result.ok && result.plaintext === warmUpPlaintext).length
})

/** Fetches the key set and warms every worker, both at once; never fails. Nothing without rich notifications. */
export const warmUp: Effect.Effect<WarmUpOutcome, never, DecryptPool | ValidationTokens | CertificateStore | SubscriptionSettings> = Effect.gen(function*() {
  const pool = yield* DecryptPool
  if (!(yield* SubscriptionSettings).includeResourceData) return { jwksFetched: false, workersDecrypted: 0, workers: pool.size }
  prepareNotificationSeries(yield* Effect.context<never>())
  // The clientState check's digest (node's crypto.hash): its first call in a process costs more than all later ones.
  constantTimeEquals("warm-up", "warm-up")
  const tokens = yield* ValidationTokens
  const certificates = yield* CertificateStore
  const [jwksFetched, workersDecrypted] = yield* Effect.all([
    tokens.prime.pipe(
      Effect.as(true),
      Effect.catch((error) => Effect.logDebug("warm-up: validation-token keys not fetched", error.message).pipe(Effect.as(false)))
    ),
    // A store that cannot be read has no current certificate: nothing to warm (CertificateStore `problem`).
    certificates.problem !== undefined ? Effect.succeed(0) : warmUpWorkers(pool, certificates).pipe(
      Effect.catchCause((cause) => Effect.logDebug("warm-up: decryption workers not warmed", cause).pipe(Effect.as(0)))
    )
  ], { concurrency: 2 })
  const outcome = { jwksFetched, workersDecrypted, workers: pool.size }
  yield* Effect.logDebug("rich-notification warm-up done").pipe(Effect.annotateLogs({ ...outcome }))
  return outcome
})

/** The warm-up of a connector's notification pipeline, done in the background; `done` when it has finished. */
export class NotificationsWarmUp extends Context.Service<NotificationsWarmUp, {
  readonly done: Deferred.Deferred<WarmUpOutcome>
}>()("teams-presence-connector/graph/notifications/crypto/NotificationsWarmUp") {
  /** Starts the warm-up when the connector's notification pipeline starts; stopped with it. */
  static readonly layer: Layer.Layer<NotificationsWarmUp, never, DecryptPool | ValidationTokens | CertificateStore | SubscriptionSettings> = Layer.effect(
    NotificationsWarmUp,
    Effect.gen(function*() {
      const done = yield* Deferred.make<WarmUpOutcome>()
      yield* Effect.forkScoped(Effect.flatMap(warmUp, (outcome) => Deferred.succeed(done, outcome)))
      return NotificationsWarmUp.of({ done })
    })
  )
}
