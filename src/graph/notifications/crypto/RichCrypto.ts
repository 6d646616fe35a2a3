/**
 * The rich-notification cipher exactly as Graph uses it (protocols.md §1.6): an AES-256 key wrapped with RSA-OAEP
 * (SHA-1), an HMAC-SHA256 signature over the ciphertext, AES-256-CBC/PKCS7 with the IV = the key's first 16 bytes.
 * Plain synchronous functions: they run inside the decryption workers and in the simulator.
 */
import * as crypto from "node:crypto"

export interface EncryptedPayload {
  readonly data: string
  readonly dataKey: string
  readonly dataSignature: string
}

/** Why an item could not be decrypted; mapped to the `reason` of `notificationsRejected`. */
export type DecryptFailure = "decrypt" | "hmac"

export type DecryptResult =
  | { readonly ok: true; readonly plaintext: string }
  | { readonly ok: false; readonly reason: DecryptFailure; readonly message: string }

/**
 * Node's RSA functions, given a bare KeyObject, use OAEP with SHA-1 — Graph's padding — and skip probing an options
 * object; the symmetric key goes in as a secret KeyObject for the same reason. Measured per item on 2 cores: unwrap
 * 366 → 336 µs, HMAC 20 → 6 µs, AES 26 → 10 µs; on the sender's side 104 → 47 µs (docs/performance.md).
 * test/graph/rich.crypto.test.ts checks both sides against the explicit `{ padding: OAEP, oaepHash: "sha1" }` form.
 */
const asPrivateKey = (key: crypto.KeyObject | string): crypto.KeyObject =>
  typeof key === "string" ? crypto.createPrivateKey(key) : key

const asPublicKey = (key: crypto.KeyObject | string): crypto.KeyObject =>
  typeof key === "string" ? crypto.createPublicKey(key) : key

/** Unwraps the key, checks the HMAC before touching the ciphertext, then decrypts. Never throws. */
export const decryptPayload = (privateKey: crypto.KeyObject | string, payload: EncryptedPayload): DecryptResult => {
  let key: Buffer
  try {
    key = crypto.privateDecrypt(asPrivateKey(privateKey), Buffer.from(payload.dataKey, "base64"))
  } catch (error) {
    return { ok: false, reason: "decrypt", message: `dataKey could not be unwrapped: ${String(error)}` }
  }
  if (key.length !== 32) return { ok: false, reason: "decrypt", message: `dataKey is ${key.length} bytes, expected 32` }
  const secret = crypto.createSecretKey(key)
  const data = Buffer.from(payload.data, "base64")
  const expected = crypto.createHmac("sha256", secret).update(data).digest()
  const actual = Buffer.from(payload.dataSignature, "base64")
  if (actual.length !== expected.length || !crypto.timingSafeEqual(actual, expected)) {
    return { ok: false, reason: "hmac", message: "dataSignature does not match HMAC-SHA256 of data" }
  }
  try {
    const decipher = crypto.createDecipheriv("aes-256-cbc", secret, key.subarray(0, 16))
    const plaintext = Buffer.concat([decipher.update(data), decipher.final()]).toString("utf8")
    return { ok: true, plaintext }
  } catch (error) {
    return { ok: false, reason: "decrypt", message: `data could not be decrypted: ${String(error)}` }
  }
}

/** The sender's side (used by the simulator): encrypts `plaintext` for the holder of `publicKey`. */
export const encryptPayload = (
  publicKey: crypto.KeyObject | string,
  plaintext: string,
  symmetricKey: Buffer = crypto.randomBytes(32)
): EncryptedPayload => {
  const secret = crypto.createSecretKey(symmetricKey)
  const cipher = crypto.createCipheriv("aes-256-cbc", secret, symmetricKey.subarray(0, 16))
  const data = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()])
  const dataSignature = crypto.createHmac("sha256", secret).update(data).digest("base64")
  const dataKey = crypto.publicEncrypt(asPublicKey(publicKey), symmetricKey)
  return { data: data.toString("base64"), dataKey: dataKey.toString("base64"), dataSignature }
}

/** A certificate given as base64 DER (the form of `encryptionCertificate`): its public key and SHA-1 thumbprint. */
export const inspectCertificate = (base64Der: string): { readonly publicKey: crypto.KeyObject; readonly thumbprint: string } => {
  const certificate = new crypto.X509Certificate(Buffer.from(base64Der, "base64"))
  return { publicKey: certificate.publicKey, thumbprint: certificate.fingerprint.replace(/:/g, "").toUpperCase() }
}

const sha256 = (text: string): Buffer => crypto.hash("sha256", text, "buffer")

/** The digests of the expected values (a subscription's clientState), worked out once each: a flood checks thousands. */
const expectedDigests = new Map<string, Buffer>()
const expectedDigestsLimit = 10_000

/**
 * Constant-time string comparison (clientState): the digests of both are compared, so neither the content nor the
 * length of `expected` shows in the time taken.
 */
export const constantTimeEquals = (received: string, expected: string): boolean => {
  let right = expectedDigests.get(expected)
  if (right === undefined) {
    right = sha256(expected)
    if (expectedDigests.size >= expectedDigestsLimit) expectedDigests.clear()
    expectedDigests.set(expected, right)
  }
  return crypto.timingSafeEqual(sha256(received), right) && received.length === expected.length
}
