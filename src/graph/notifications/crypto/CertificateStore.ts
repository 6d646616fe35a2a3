/**
 * The connector's rich-notification certificates: an RSA-2048 key pair and a self-signed X.509 certificate
 * (@peculiar/x509), persisted in the data directory. Rotation keeps old keys until nothing names them any more.
 */
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API loaded first.
import "reflect-metadata"
import * as x509 from "@peculiar/x509"
import { Clock, Context, Effect, Layer, Random, Redacted, Schema, SynchronizedRef } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { SubscriptionSettings } from "../../subscriptions/SubscriptionSettings.ts"

x509.cryptoProvider.set(crypto.webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

const StoredCertificate = Schema.Struct({
  id: Schema.String,
  certificate: Schema.String,
  privateKey: Schema.String,
  thumbprint: Schema.String,
  createdAt: Schema.Number,
  notAfter: Schema.Number
})
type StoredCertificate = typeof StoredCertificate.Type

const StoreFile = Schema.fromJsonString(Schema.Struct({
  currentId: Schema.String,
  certificates: Schema.Array(StoredCertificate)
}))
type StoreFile = typeof StoreFile.Type

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

const keepTheFile =
  "Do not delete the file: a new key would break every existing rich-notification subscription until it is recreated."

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
  /** `lifetimeMillis`: validity of each certificate it generates (default two years; tests use short ones). */
  static readonly make = Effect.fn("CertificateStore.make")(function*(
    dataDir: string,
    options: { readonly lifetimeMillis?: number } = {}
  ) {
    const file = path.join(dataDir, "rich-notification-keys.json")
    const generate = generateCertificate(options.lifetimeMillis ?? DEFAULT_LIFETIME_MS)
    const loaded = yield* readStore(file).pipe(Effect.result)
    if (loaded._tag === "Failure") return yield* unusable(loaded.failure)
    const initial = loaded.success ?? (yield* generate.pipe(Effect.map((c): StoreFile => ({ currentId: c.id, certificates: [c] }))))
    if (loaded.success === undefined) yield* writeStore(file, initial)
    const state = yield* SynchronizedRef.make(initial)

    const current = SynchronizedRef.get(state).pipe(Effect.map((s) => {
      const found = s.certificates.find((c) => c.id === s.currentId) ?? s.certificates[0]!
      return toInfo(found)
    }))
    const keys = SynchronizedRef.get(state).pipe(Effect.map((s) =>
      [...s.certificates]
        .sort((a, b) => (a.id === s.currentId ? -1 : b.id === s.currentId ? 1 : b.createdAt - a.createdAt))
        .map((c): DecryptionKey => ({ id: c.id, thumbprint: c.thumbprint, privateKeyPem: Redacted.make(c.privateKey) }))
    ))
    const rotate = SynchronizedRef.modifyEffect(state, (s) =>
      Effect.gen(function*() {
        const next = yield* generate
        const updated: StoreFile = { currentId: next.id, certificates: [next, ...s.certificates] }
        yield* writeStore(file, updated)
        yield* Effect.logInfo("rich-notification certificate rotated").pipe(Effect.annotateLogs({ certificateId: next.id }))
        return [toInfo(next), updated] as const
      })
    )
    const retire = (inUse: ReadonlyArray<string>) =>
      SynchronizedRef.updateEffect(state, (s) => {
        const kept = s.certificates.filter((c) => c.id === s.currentId || inUse.includes(c.id))
        if (kept.length === s.certificates.length) return Effect.succeed(s)
        const updated: StoreFile = { currentId: s.currentId, certificates: kept }
        return writeStore(file, updated).pipe(Effect.as(updated))
      })
    return CertificateStore.of({ current, keys, rotate, retire, problem: undefined })
  })

  static readonly layer = Layer.effect(
    CertificateStore,
    Effect.gen(function*() {
      const settings = yield* SubscriptionSettings
      return yield* CertificateStore.make(settings.dataDir, { lifetimeMillis: settings.certificateLifetimeDays * DAY_MS })
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
      return { id, certificate: der.toString("base64"), privateKey, thumbprint, createdAt: now, notAfter: now + lifetimeMillis }
    },
    catch: (error) => new CertificateError({ message: `could not generate the notification certificate: ${String(error)}` })
  })
})

const isMissing = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "code" in error && (error as { readonly code: unknown }).code === "ENOENT"

/**
 * The stored keys; undefined only when the file does not exist (a new store). Any other failure — no permission, a
 * directory in its place, a corrupt file — is a problem to report, never a reason to start over with a new key.
 */
const readStore = (file: string): Effect.Effect<StoreFile | undefined, CertificateProblem> =>
  Effect.tryPromise({
    try: () => fs.readFile(file, "utf8"),
    catch: (error) => error
  }).pipe(
    Effect.map((text): string | undefined => text),
    Effect.catch((error) =>
      isMissing(error)
        ? Effect.succeed(undefined)
        : Effect.fail<CertificateProblem>({
          message: `cannot read the rich-notification key store ${file}: ${error instanceof Error ? error.message : String(error)}`,
          fix: `Give the connector's user read and write access to ${file} (and its directory), then restart. ${keepTheFile}`
        })
    ),
    Effect.flatMap((text) =>
      text === undefined
        ? Effect.succeed(undefined)
        : Schema.decodeUnknownEffect(StoreFile)(text).pipe(
          Effect.mapError((error): CertificateProblem => ({
            message: `the rich-notification key store ${file} is not valid (${error.message.split("\n")[0]})`,
            fix: `Restore ${file} from a backup and restart. ${keepTheFile} Only if no backup exists, move it away and ` +
              "restart: a new key is then generated and every presence subscription is recreated with it."
          }))
        )
    )
  )

const writeStore = (file: string, store: StoreFile): Effect.Effect<void, CertificateError> =>
  Effect.tryPromise({
    try: async () => {
      await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
      const temp = `${file}.tmp`
      await fs.writeFile(temp, Schema.encodeSync(StoreFile)(store), { mode: 0o600 })
      await fs.rename(temp, file)
    },
    catch: (error) => new CertificateError({ message: `could not write ${file}: ${String(error)}` })
  })
