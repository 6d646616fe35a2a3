/**
 * Rotation of the rich-notification certificate (push mode with resource data only), part of the SubscriptionManager:
 * rotated before it expires (checked at start and every `certificateCheckMinutes`) and PATCHed into every presence
 * subscription with its renewal; an old key is retired once no subscription names it and `certificateGraceMinutes`
 * have passed, because Graph's retries are still sealed with it.
 */
import { Clock, Effect, Queue } from "effect"
import { type CertificateInfo, CertificateStore } from "../notifications/crypto/CertificateStore.ts"
import { DecryptPool } from "../notifications/crypto/DecryptPool.ts"
import { every } from "../presence/PollSchedule.ts"
import { SubscriptionSettings } from "./SubscriptionSettings.ts"
import { type CertificateStatus, minutes, type Shard } from "./SubscriptionState.ts"

/** Runs one step under the manager's lock, logging its failure. */
export type Guard = <E>(effect: Effect.Effect<void, E>) => Effect.Effect<void>

export const makeCertificateRotation = Effect.fnUntraced(function*(manager: {
  readonly shards: () => ReadonlyArray<Shard>
  /** Renews one presence subscription, which names the current certificate in its PATCH. */
  readonly renewShard: (shard: Shard) => Effect.Effect<void>
}) {
  const settings = yield* SubscriptionSettings
  const certificates = yield* CertificateStore
  const pool = yield* DecryptPool
  // With an unreadable key store (certificates.problem) nothing is checked, rotated or retired: the store's problem is
  // on the status page, and the keys on disk stay untouched until an administrator has fixed them.
  const rich = settings.mode === "push" && settings.includeResourceData && certificates.problem === undefined
  /** Wakes the key-retirement fiber after anything that may have released an old certificate. */
  const retirementKick = yield* Queue.sliding<void>(1)
  /** When each old key was first seen named by no subscription (in memory: a restart restarts the grace period). */
  const unusedSince = new Map<string, number>()
  let nextRetirementAt: number | undefined
  let certificateStatus: CertificateStatus | undefined
  let lastRotationAt: number | undefined

  const describe = (info: CertificateInfo, previous: CertificateStatus["previous"], error?: string): CertificateStatus => ({
    currentId: info.id,
    notAfter: info.notAfter,
    previous,
    ...(lastRotationAt !== undefined ? { lastRotationAt } : {}),
    ...(error !== undefined ? { error } : {})
  })

  /**
   * Drops old keys no subscription names any more once their grace period has passed, reloading the decryption
   * workers; remembers when the next one falls due.
   */
  const retireKeys = Effect.fnUntraced(function*() {
    if (!rich) return
    const now = yield* Clock.currentTimeMillis
    const current = yield* certificates.current
    const held = yield* certificates.keys
    const named = new Set(manager.shards().flatMap((s) => (s.live?.certificateId === undefined ? [] : [s.live.certificateId])))
    const grace = minutes(settings.certificateGraceMinutes)
    const previous: Array<CertificateStatus["previous"][number]> = []
    const retired: Array<string> = []
    nextRetirementAt = undefined
    for (const key of held) {
      if (key.id === current.id) continue
      if (named.has(key.id)) {
        unusedSince.delete(key.id)
        previous.push({ id: key.id })
        continue
      }
      const since = unusedSince.get(key.id) ?? now
      unusedSince.set(key.id, since)
      const retireAt = since + grace
      if (now < retireAt) {
        previous.push({ id: key.id, retireAt })
        nextRetirementAt = Math.min(nextRetirementAt ?? retireAt, retireAt)
      } else {
        retired.push(key.id)
      }
    }
    if (retired.length > 0) {
      yield* certificates.retire(previous.map((p) => p.id))
      yield* pool.reloadKeys
      for (const id of retired) unusedSince.delete(id)
      yield* Effect.logInfo(`retired ${retired.length} rich-notification key(s) no subscription names any more`).pipe(
        Effect.annotateLogs({ certificateIds: retired.join(",") })
      )
    }
    certificateStatus = describe(current, previous)
  })

  /** New certificate: the workers learn the key first, then every presence subscription is PATCHed to name it. */
  const rotateNow = Effect.fnUntraced(function*(reason: string) {
    const next = yield* certificates.rotate
    yield* pool.reloadKeys
    lastRotationAt = yield* Clock.currentTimeMillis
    yield* Effect.logInfo(`rich-notification certificate rotated (${reason})`).pipe(Effect.annotateLogs({ certificateId: next.id }))
    for (const shard of manager.shards()) {
      if (shard.live !== undefined && shard.account !== undefined && shard.live.certificateId !== undefined) {
        yield* manager.renewShard(shard)
      }
    }
    const failed = manager.shards().filter((s) => s.live?.certificateId !== undefined && s.live.certificateId !== next.id).length
    if (failed > 0) {
      yield* Effect.logWarning(`${failed} presence subscription(s) still name the old certificate; the next renewal retries`)
    }
    yield* retireKeys()
  })

  /** Rotates when the current certificate expires within `certificateRenewBeforeDays`. */
  const checkCertificate = Effect.fnUntraced(function*() {
    if (!rich) return
    const window = settings.certificateRenewBeforeDays * 24 * 60 * 60_000
    const now = yield* Clock.currentTimeMillis
    const current = yield* certificates.current
    if (current.notAfter - now > window) return yield* retireKeys()
    const rotated = yield* rotateNow(`the current one expires ${new Date(current.notAfter).toISOString()}`).pipe(Effect.result)
    if (rotated._tag === "Failure") {
      const message = `certificate rotation failed: ${rotated.failure.message}; retried at the next check`
      certificateStatus = describe(current, certificateStatus?.previous ?? [], message)
      return yield* Effect.logError(message)
    }
    const next = yield* certificates.current
    if (next.notAfter - now <= window) {
      yield* Effect.logWarning("the certificate lifetime is shorter than the rotation window: it is rotated at every check")
    }
  })

  return {
    status: () => certificateStatus,
    /**
     * The certificate a new presence subscription names (none without resource data); fails when the key store is
     * unreadable, and the subscription is then not created.
     */
    forNewSubscription: settings.includeResourceData ? certificates.current : Effect.succeed(undefined),
    /**
     * The current certificate when the subscription names an older one: its renewal PATCHes it in (a rotation, or the
     * retry of a rotation PATCH that failed).
     */
    replacementFor: Effect.fnUntraced(function*(certificateId: string | undefined) {
      const certificate = rich && certificateId !== undefined ? yield* certificates.current.pipe(Effect.orElseSucceed(() => undefined)) : undefined
      return certificate !== undefined && certificate.id !== certificateId ? certificate : undefined
    }),
    /** After each step: lets the retirement fiber look whether an old key was released. */
    kick: rich ? Queue.offer(retirementKick, undefined) : Effect.void,
    check: Effect.suspend(() => checkCertificate()),
    rotate: Effect.suspend(() => (rich ? rotateNow("requested") : Effect.void)),
    /** Forks the periodic expiry check and the retirement fiber (which needs no kick of its own: `guardedQuiet`). */
    start: Effect.fnUntraced(function*(guarded: Guard, guardedQuiet: Guard) {
      if (!rich) return
      yield* every(minutes(settings.certificateCheckMinutes), guarded(checkCertificate())).pipe(Effect.forkScoped)
      // Sleeps until the next old key falls due, or until a step may have released one.
      yield* Effect.gen(function*() {
        while (true) {
          const now = yield* Clock.currentTimeMillis
          if (nextRetirementAt === undefined) yield* Queue.take(retirementKick)
          else yield* Queue.take(retirementKick).pipe(Effect.timeoutOption(Math.max(0, nextRetirementAt - now)))
          yield* guardedQuiet(retireKeys())
        }
      }).pipe(Effect.forkScoped)
    })
  }
})
