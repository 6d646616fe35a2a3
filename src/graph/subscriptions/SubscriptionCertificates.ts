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
import { SubscriptionSettings, type SubscriptionSettingsOptions } from "./SubscriptionSettings.ts"
import { type CertificateStatus, minutes, type Shard } from "./SubscriptionState.ts"

/** Runs one step under the manager's lock, logging its failure. */
export type Guard = <E>(effect: Effect.Effect<void, E>) => Effect.Effect<void>

/** What the rotation needs of the manager. */
export interface RotationManager {
  readonly shards: () => ReadonlyArray<Shard>
  /** Renews one presence subscription, which names the current certificate in its PATCH. */
  readonly renewShard: (shard: Shard) => Effect.Effect<void>
}

/**
 * When each old key fell out of use, and which keys are due: a key no subscription names is kept for the grace
 * period from the first time it was seen unnamed (in memory: a restart restarts the grace period).
 */
export class KeyRetirement {
  readonly #unusedSince = new Map<string, number>()
  /** When the next old key falls due, if any waits. */
  nextAt: number | undefined

  /** Sorts the held keys other than the current one into those still kept (with `retireAt` when unnamed) and those due. */
  review(heldIds: ReadonlyArray<string>, currentId: string, named: ReadonlySet<string>, now: number, graceMillis: number) {
    const previous: Array<CertificateStatus["previous"][number]> = []
    const retired: Array<string> = []
    this.nextAt = undefined
    for (const id of heldIds) {
      if (id === currentId) continue
      if (named.has(id)) {
        this.#unusedSince.delete(id)
        previous.push({ id })
        continue
      }
      const since = this.#unusedSince.get(id) ?? now
      this.#unusedSince.set(id, since)
      const retireAt = since + graceMillis
      if (now < retireAt) {
        previous.push({ id, retireAt })
        this.nextAt = Math.min(this.nextAt ?? retireAt, retireAt)
      } else {
        retired.push(id)
      }
    }
    return { previous, retired }
  }

  forget(ids: ReadonlyArray<string>): void {
    for (const id of ids) this.#unusedSince.delete(id)
  }
}

interface Rotation {
  readonly settings: SubscriptionSettingsOptions
  readonly certificates: CertificateStore["Service"]
  readonly pool: DecryptPool["Service"]
  readonly manager: RotationManager
  /** Off without resource data, and with an unreadable key store (its problem is on the status page). */
  readonly rich: boolean
  readonly retirement: KeyRetirement
  /** Wakes the key-retirement fiber after anything that may have released an old certificate. */
  readonly kick: Queue.Queue<void>
  status: CertificateStatus | undefined
  lastRotationAt: number | undefined
}

const describe = (rotation: Rotation, info: CertificateInfo, previous: CertificateStatus["previous"], error?: string): CertificateStatus => ({
  currentId: info.id,
  notAfter: info.notAfter,
  previous,
  ...(rotation.lastRotationAt !== undefined ? { lastRotationAt: rotation.lastRotationAt } : {}),
  ...(error !== undefined ? { error } : {})
})

/** Drops old keys no subscription names any more once their grace period has passed, reloading the decryption workers. */
const retireKeys = Effect.fn("SubscriptionCertificates.retireKeys")(function*(rotation: Rotation) {
  if (!rotation.rich) return
  const now = yield* Clock.currentTimeMillis
  const current = yield* rotation.certificates.current
  const held = yield* rotation.certificates.keys
  const named = new Set(rotation.manager.shards().flatMap((s) => (s.live?.certificateId === undefined ? [] : [s.live.certificateId])))
  const { previous, retired } = rotation.retirement.review(
    held.map((key) => key.id),
    current.id,
    named,
    now,
    minutes(rotation.settings.certificateGraceMinutes)
  )
  if (retired.length > 0) {
    yield* rotation.certificates.retire(previous.map((p) => p.id))
    yield* rotation.pool.reloadKeys
    rotation.retirement.forget(retired)
    yield* Effect.logInfo(`retired ${retired.length} rich-notification key(s) no subscription names any more`).pipe(
      Effect.annotateLogs({ certificateIds: retired.join(",") })
    )
  }
  rotation.status = describe(rotation, current, previous)
})

/** New certificate: the workers learn the key first, then every presence subscription is PATCHed to name it. */
const rotateNow = Effect.fn("SubscriptionCertificates.rotate")(function*(rotation: Rotation, reason: string) {
  const next = yield* rotation.certificates.rotate
  yield* rotation.pool.reloadKeys
  rotation.lastRotationAt = yield* Clock.currentTimeMillis
  yield* Effect.logInfo(`rich-notification certificate rotated (${reason})`).pipe(Effect.annotateLogs({ certificateId: next.id }))
  for (const shard of rotation.manager.shards()) {
    if (shard.live !== undefined && shard.account !== undefined && shard.live.certificateId !== undefined) {
      yield* rotation.manager.renewShard(shard)
    }
  }
  const failed = rotation.manager.shards().filter((s) => s.live?.certificateId !== undefined && s.live.certificateId !== next.id).length
  if (failed > 0) yield* Effect.logWarning(`${failed} presence subscription(s) still name the old certificate; the next renewal retries`)
  yield* retireKeys(rotation)
})

/** Rotates when the current certificate expires within `certificateRenewBeforeDays`. */
const checkCertificate = Effect.fn("SubscriptionCertificates.check")(function*(rotation: Rotation) {
  if (!rotation.rich) return
  const window = rotation.settings.certificateRenewBeforeDays * 24 * 60 * 60_000
  const now = yield* Clock.currentTimeMillis
  const current = yield* rotation.certificates.current
  if (current.notAfter - now > window) return yield* retireKeys(rotation)
  const rotated = yield* rotateNow(rotation, `the current one expires ${new Date(current.notAfter).toISOString()}`).pipe(Effect.result)
  if (rotated._tag === "Failure") {
    const message = `certificate rotation failed: ${rotated.failure.message}; retried at the next check`
    rotation.status = describe(rotation, current, rotation.status?.previous ?? [], message)
    return yield* Effect.logError(message)
  }
  const next = yield* rotation.certificates.current
  if (next.notAfter - now <= window) {
    yield* Effect.logWarning("the certificate lifetime is shorter than the rotation window: it is rotated at every check")
  }
})

/**
 * The current certificate when a subscription names an older one: its renewal PATCHes it in (a rotation, or the retry
 * of a rotation PATCH that failed).
 */
const replacementFor = Effect.fnUntraced(function*(rotation: Rotation, certificateId: string | undefined) {
  const certificate = rotation.rich && certificateId !== undefined
    ? yield* rotation.certificates.current.pipe(Effect.orElseSucceed(() => undefined))
    : undefined
  return certificate !== undefined && certificate.id !== certificateId ? certificate : undefined
})

/** Forks the periodic expiry check and the retirement fiber (which needs no kick of its own: `guardedQuiet`). */
const start = Effect.fnUntraced(function*(rotation: Rotation, guarded: Guard, guardedQuiet: Guard) {
  if (!rotation.rich) return
  yield* every(minutes(rotation.settings.certificateCheckMinutes), guarded(checkCertificate(rotation))).pipe(Effect.forkScoped)
  // Sleeps until the next old key falls due, or until a step may have released one.
  yield* Effect.gen(function*() {
    while (true) {
      const now = yield* Clock.currentTimeMillis
      const due = rotation.retirement.nextAt
      if (due === undefined) yield* Queue.take(rotation.kick)
      else yield* Queue.take(rotation.kick).pipe(Effect.timeoutOption(Math.max(0, due - now)))
      yield* guardedQuiet(retireKeys(rotation))
    }
  }).pipe(Effect.forkScoped)
})

export const makeCertificateRotation = Effect.fnUntraced(function*(manager: RotationManager) {
  const settings = yield* SubscriptionSettings
  const certificates = yield* CertificateStore
  // With an unreadable key store (certificates.problem) nothing is checked, rotated or retired: the store's problem is
  // on the status page, and the keys on disk stay untouched until an administrator has fixed them.
  const rotation: Rotation = {
    settings,
    certificates,
    pool: yield* DecryptPool,
    manager,
    rich: settings.mode === "push" && settings.includeResourceData && certificates.problem === undefined,
    retirement: new KeyRetirement(),
    kick: yield* Queue.sliding<void>(1),
    status: undefined,
    lastRotationAt: undefined
  }
  return {
    status: () => rotation.status,
    /**
     * The certificate a new presence subscription names (none without resource data); fails when the key store is
     * unreadable, and the subscription is then not created.
     */
    forNewSubscription: settings.includeResourceData ? certificates.current : Effect.succeed(undefined),
    replacementFor: (certificateId: string | undefined) => replacementFor(rotation, certificateId),
    /** After each step: lets the retirement fiber look whether an old key was released. */
    kick: rotation.rich ? Queue.offer(rotation.kick, undefined) : Effect.void,
    check: checkCertificate(rotation),
    rotate: rotation.rich ? rotateNow(rotation, "requested") : Effect.void,
    start: (guarded: Guard, guardedQuiet: Guard) => start(rotation, guarded, guardedQuiet)
  }
})

export type CertificateRotation = Effect.Success<ReturnType<typeof makeCertificateRotation>>
