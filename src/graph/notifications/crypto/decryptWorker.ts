/**
 * Worker-thread entry of the decryption pool. Runs under Node's type stripping: erasable syntax only, `.ts` imports.
 * Messages in: `{ type: "keys", owner, keys: [{id, thumbprint, pem}] }` (replaces that owner's keys; none forgets the
 * owner) and `{ type: "decrypt", id, owner, items: [...] }`, decrypted with that owner's keys only: the tenants sharing
 * the workers never decrypt with each other's keys, whatever certificate id or thumbprint an item names. Each answer
 * carries the chunk's wall-clock time inside the worker (`micros`): the pool's measured speed (FloodGate.ts).
 */
import * as crypto from "node:crypto"
import { readlinkSync } from "node:fs"
import { getPriority, setPriority } from "node:os"
import { parentPort, workerData } from "node:worker_threads"
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

interface OwnerKeys {
  readonly byId: Map<string, crypto.KeyObject>
  readonly byThumbprint: Map<string, crypto.KeyObject>
}

const owners = new Map<number, OwnerKeys>()

/**
 * Lowers this thread's priority by `nice` steps (`notifications.decryptWorkerNice`, DecryptWorkers.ts). Linux keeps
 * a nice value per thread; /proc/thread-self names this thread's id. Elsewhere, or when it cannot be read, the worker
 * keeps the process's.
 */
const lowerPriority = (nice: unknown): void => {
  if (typeof nice !== "number" || nice <= 0 || process.platform !== "linux") return
  try {
    const threadId = Number(readlinkSync("/proc/thread-self").split("/").pop())
    if (Number.isInteger(threadId) && threadId > 0) setPriority(threadId, Math.min(19, getPriority(threadId) + nice))
  } catch {
    // Not permitted or not available: the worker runs at the process's priority.
  }
}
lowerPriority((workerData as { nice?: unknown } | null)?.nice)

const findKey = (keys: OwnerKeys | undefined, item: WorkItem): crypto.KeyObject | undefined =>
  keys?.byId.get(item.encryptionCertificateId) ?? keys?.byThumbprint.get(item.encryptionCertificateThumbprint.toUpperCase())

parentPort?.on("message", (message: { type: string; id?: number; owner?: number; keys?: Array<KeyMessage>; items?: Array<WorkItem> }) => {
  const owner = message.owner ?? 0
  if (message.type === "keys") {
    const byId = new Map<string, crypto.KeyObject>()
    const byThumbprint = new Map<string, crypto.KeyObject>()
    if ((message.keys ?? []).length === 0) owners.delete(owner)
    else owners.set(owner, { byId, byThumbprint })
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
    const keys = owners.get(owner)
    const begun = performance.now()
    const results: Array<DecryptResult> = (message.items ?? []).map((item) => {
      const key = findKey(keys, item)
      if (key === undefined) {
        return {
          ok: false,
          reason: "decrypt",
          message: `no key for certificate id "${item.encryptionCertificateId}" (thumbprint ${item.encryptionCertificateThumbprint})`
        }
      }
      return decryptPayload(key, item)
    })
    parentPort?.postMessage({ id: message.id, results, micros: Math.round((performance.now() - begun) * 1000) })
  }
})
