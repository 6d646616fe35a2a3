/**
 * Worker-thread entry of the decryption pool. Runs under Node's type stripping: erasable syntax only, `.ts` imports.
 * Messages in: `{ type: "keys", keys: [{id, thumbprint, pem}] }` and `{ type: "decrypt", id, items: [...] }`.
 */
import * as crypto from "node:crypto"
import { parentPort } from "node:worker_threads"
import { decryptPayload, type DecryptResult, type EncryptedPayload } from "./RichCrypto.ts"

interface KeyMessage {
  readonly id: string
  readonly thumbprint: string
  readonly pem: string
}

interface WorkItem extends EncryptedPayload {
  readonly encryptionCertificateId: string
  readonly encryptionCertificateThumbprint: string
}

const byId = new Map<string, crypto.KeyObject>()
const byThumbprint = new Map<string, crypto.KeyObject>()

const findKey = (item: WorkItem): crypto.KeyObject | undefined =>
  byId.get(item.encryptionCertificateId) ?? byThumbprint.get(item.encryptionCertificateThumbprint.toUpperCase())

parentPort?.on("message", (message: { type: string; id?: number; keys?: Array<KeyMessage>; items?: Array<WorkItem> }) => {
  if (message.type === "keys") {
    byId.clear()
    byThumbprint.clear()
    for (const key of message.keys ?? []) {
      try {
        const object = crypto.createPrivateKey(key.pem)
        byId.set(key.id, object)
        byThumbprint.set(key.thumbprint.toUpperCase(), object)
      } catch {
        // An unreadable key is skipped: items naming it fail as "no key", the worker stays up.
      }
    }
    return
  }
  if (message.type === "decrypt") {
    const results: Array<DecryptResult> = (message.items ?? []).map((item) => {
      const key = findKey(item)
      if (key === undefined) {
        return {
          ok: false,
          reason: "decrypt",
          message: `no key for certificate id "${item.encryptionCertificateId}" (thumbprint ${item.encryptionCertificateThumbprint})`
        }
      }
      return decryptPayload(key, item)
    })
    parentPort?.postMessage({ id: message.id, results })
  }
})
