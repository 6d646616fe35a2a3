/**
 * The connector's rich-notification certificates: an RSA-2048 key pair and a self-signed X.509 certificate
 * (@peculiar/x509), kept in the tenant's state (src/state: rich-notification-keys.json in the data directory, or rows
 * in PostgreSQL; private keys sealed at rest). Rotation keeps old keys until nothing names them any more.
 */
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API loaded first.
import "reflect-metadata"
import * as x509 from "@peculiar/x509"
import { Clock, Context, Effect, Layer, Option, Random, Redacted, Schema, SynchronizedRef } from "effect"
import * as crypto from "node:crypto"
import type { CertificateSet, StoredCertificate } from "../../../state/Records.ts"
import type { StateStoreError } from "../../../state/StateStoreError.ts"
import { TenantState } from "../../../state/TenantState.ts"
import { SubscriptionSettings } from "../../subscriptions/SubscriptionSettings.ts"

x509.cryptoProvider.set(crypto.webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

/** What a subscription needs to name the certificate, and what a decryptor needs to use it. */
export interface CertificateInfo {
  readonly id: string
  /** base64 DER, as `encryptionCertificate` wants it. */
  readonly certificate: string
  readonly thumbprint: string
  readonly notAfter: number
}

export interface DecryptionKey {
  readonly id: string
  readonly thumbprint: string
  readonly privateKeyPem: Redacted.Redacted<string>
}

export class CertificateError extends Schema.TaggedError<CertificateError>()("CertificateError", {
  message: Schema.String
}) {}

/** Why the key store could not be used, and what an administrator does about it. */
export interface CertificateProblem {
  readonly message: string
  readonly fix: string
}

const keepTheKeys =
  "Do not delete the stored keys: a new key would break every existing rich-notification subscription until it is recreated."

export class CertificateStore extends Context.Service<CertificateStore, {
  /** The certificate new subscriptions and renewals name. */
  readonly current: Effect.Effect<CertificateInfo, CertificateError>
  /** Every key still held (current first). */
  readonly keys: Effect.Effect<ReadonlyArray<DecryptionKey>>
  /** Creates a new current certificate; the previous keys stay until `retire`. */
  readonly rotate: Effect.Effect<CertificateInfo, CertificateError>
  /** Drops keys that are not current and not named in `inUse`. */
  retire(inUse: ReadonlyArray<string>): Effect.Effect<void, CertificateError>
  /**
   * Set when the store exists but cannot be read (permissions, a corrupt file): the connector then runs without rich
   * notifications and shows this on the status page. It never generates a new key over an unreadable store.
   */
  readonly problem: CertificateProblem | undefined
}>()("teams-presence-connector/graph/notifications/crypto/CertificateStore") {
  /**
   * The tenant's stored keys, or a new key when none is stored. `lifetimeMillis`: validity of each certificate it
   * generates (default two years; tests use short ones).
   */
  static readonly make = Effect.fn("CertificateStore.make")(function*(options: { readonly lifetimeMillis?: number } = {}) {
    const stored = yield* TenantState
    const generate = generateCertificate(options.lifetimeMillis ?? DEFAULT_LIFETIME_MS)
    const writeStore = (set: CertificateSet) =>
      stored.certificates.save(set).pipe(
        Effect.mapError((error) => new CertificateError({ message: `could not store the rich-notification keys: ${error.message}` }))
      )
    const loaded = yield* stored.certificates.load.pipe(Effect.result)
    if (loaded._tag === "Failure") return yield* unusable(problemOf(loaded.failure))
    const initial = Option.isSome(loaded.success)
      ? loaded.success.value
      : yield* generate.pipe(Effect.map((c): CertificateSet => ({ currentId: c.id, certificates: [c] })))
    if (Option.isNone(loaded.success)) yield* writeStore(initial)
    const state = yield* SynchronizedRef.make(initial)

    const current = SynchronizedRef.get(state).pipe(Effect.map((s) => {
      const found = s.certificates.find((c) => c.id === s.currentId) ?? s.certificates[0]!
      return toInfo(found)
    }))
    const keys = SynchronizedRef.get(state).pipe(Effect.map((s) =>
      [...s.certificates]
        .sort((a, b) => (a.id === s.currentId ? -1 : b.id === s.currentId ? 1 : b.createdAt - a.createdAt))
        .map((c): DecryptionKey => ({ id: c.id, thumbprint: c.thumbprint, privateKeyPem: c.privateKey }))
    ))
    const rotate = SynchronizedRef.modifyEffect(state, (s) =>
      Effect.gen(function*() {
        const next = yield* generate
        const updated: CertificateSet = { currentId: next.id, certificates: [next, ...s.certificates] }
        yield* writeStore(updated)
        yield* Effect.logInfo("rich-notification certificate rotated").pipe(Effect.annotateLogs({ certificateId: next.id }))
        return [toInfo(next), updated] as const
      })
    )
    const retire = (inUse: ReadonlyArray<string>) =>
      SynchronizedRef.updateEffect(state, (s) => {
        const kept = s.certificates.filter((c) => c.id === s.currentId || inUse.includes(c.id))
        if (kept.length === s.certificates.length) return Effect.succeed(s)
        const updated: CertificateSet = { currentId: s.currentId, certificates: kept }
        return writeStore(updated).pipe(Effect.as(updated))
      })
    return CertificateStore.of({ current, keys, rotate, retire, problem: undefined })
  })

  static readonly layer = Layer.effect(
    CertificateStore,
    Effect.gen(function*() {
      const settings = yield* SubscriptionSettings
      return yield* CertificateStore.make({ lifetimeMillis: settings.certificateLifetimeDays * DAY_MS })
    })
  )
}

/** The store of a connector whose key file cannot be read: every use fails with the same clear message. */
const unusable = Effect.fnUntraced(function*(problem: CertificateProblem) {
  yield* Effect.logError(`rich notifications are off: ${problem.message}. ${problem.fix}`)
  const error = new CertificateError({ message: problem.message })
  return CertificateStore.of({
    current: Effect.fail(error),
    keys: Effect.succeed([]),
    rotate: Effect.fail(error),
    retire: () => Effect.fail(error),
    problem
  })
})

const toInfo = (c: StoredCertificate): CertificateInfo => ({
  id: c.id,
  certificate: c.certificate,
  thumbprint: c.thumbprint,
  notAfter: c.notAfter
})

const DAY_MS = 24 * 3600 * 1000
const DEFAULT_LIFETIME_MS = 730 * DAY_MS

/** A new RSA-2048 key and its self-signed certificate, valid for `lifetimeMillis` from now. */
const generateCertificate = Effect.fn("CertificateStore.generate")(function*(lifetimeMillis: number): Effect.fn.Return<StoredCertificate, CertificateError> {
  const now = yield* Clock.currentTimeMillis
  const suffix = (yield* Random.nextIntBetween(0, 0xffffff)).toString(16).padStart(6, "0")
  const id = `tpc-${now.toString(36)}-${suffix}`
  return yield* Effect.tryPromise({
    try: async () => {
      const algorithm = {
        name: "RSASSA-PKCS1-v1_5",
        hash: "SHA-256",
        publicExponent: new Uint8Array([1, 0, 1]),
        modulusLength: 2048
      }
      const keys = await crypto.webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"])
      const certificate = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: Buffer.from(id).toString("hex").slice(0, 30),
        name: "CN=teams-presence-connector rich notifications",
        notBefore: new Date(now - 60_000),
        notAfter: new Date(now + lifetimeMillis),
        signingAlgorithm: algorithm,
        keys: keys as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]["keys"]
      })
      const pkcs8 = await crypto.webcrypto.subtle.exportKey("pkcs8", keys.privateKey)
      const der = Buffer.from(certificate.rawData)
      const thumbprint = new crypto.X509Certificate(der).fingerprint.replace(/:/g, "").toUpperCase()
      const privateKey = crypto.createPrivateKey({ key: Buffer.from(pkcs8), format: "der", type: "pkcs8" })
        .export({ format: "pem", type: "pkcs8" }).toString()
      return {
        id,
        certificate: der.toString("base64"),
        privateKey: Redacted.make(privateKey),
        thumbprint,
        createdAt: now,
        notAfter: now + lifetimeMillis
      }
    },
    catch: (error) => new CertificateError({ message: `could not generate the notification certificate: ${String(error)}` })
  })
})

/**
 * Why stored keys cannot be used, and what to do: the store only ever reports a missing record as None, so every
 * failure here (no permission, a corrupt record, a key sealed with a state key that is not configured, the database
 * unreachable) leaves the stored keys as they are.
 */
const problemOf = (error: StateStoreError): CertificateProblem => {
  switch (error.reason) {
    case "Corrupt":
    case "Invalid":
      return {
        message: `the rich-notification key store is not valid: ${error.message}`,
        fix: `Restore the stored keys from a backup and restart. ${keepTheKeys} Only if no backup exists, remove them (the ` +
          "file rich-notification-keys.json, or the tenant's rows in the certificates table) and restart: a new key is then " +
          "generated and every presence subscription is recreated with it."
      }
    case "Sealed":
    case "NotConfigured":
      return {
        message: `the rich-notification key store cannot be opened: ${error.message}`,
        fix: `Configure the state key that sealed the keys (CONNECTOR_STATE_KEY, or CONNECTOR_STATE_KEY_PREVIOUS) and restart. ${keepTheKeys}`
      }
    default:
      return {
        message: `cannot read the rich-notification key store: ${error.message}`,
        fix: `Give the connector's user read and write access to the data directory (or make the state database reachable), then restart. ${keepTheKeys}`
      }
  }
}
