/**
 * Worker-thread entry of the decryption pool. Runs under Node's type stripping: erasable syntax only, `.ts` imports.
 * Messages in: `{ type: "keys", owner, keys: [{id, thumbprint, pem}] }` (replaces that owner's keys; none forgets the
 * owner) and `{ type: "decrypt", requests: [{ id, owner, items: [...] }] }`, each request decrypted with its owner's
 * keys only: the tenants sharing the workers never decrypt with each other's keys, whatever certificate id or
 * thumbprint an item names. Answers out: `{ answers: [{ id, results, micros }] }`, each carrying its request's
 * wall-clock time inside the worker (`micros`: the pool's measured speed, FloodGate.ts). A request's answer leaves as
 * soon as the answers held reach `answerItems` items, else with the last of the message: a large chunk is answered
 * alone at once, the small chunks of many tenants together.
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

interface DecryptRequest {
  readonly id: number
  readonly owner: number
  readonly items: ReadonlyArray<WorkItem>
}

interface Answer {
  readonly id: number
  readonly results: ReadonlyArray<DecryptResult>
  readonly micros: number
}

/** Answers held beyond this many items leave at once: about 5 ms of unwrapping (DecryptPool's chunks are up to 50). */
const answerItems = 16

const setKeys = (owner: number, keys: ReadonlyArray<KeyMessage>): void => {
  const byId = new Map<string, crypto.KeyObject>()
  const byThumbprint = new Map<string, crypto.KeyObject>()
  if (keys.length === 0) owners.delete(owner)
  else owners.set(owner, { byId, byThumbprint })
  for (const key of keys) {
    try {
      const object = crypto.createPrivateKey(key.pem)
      byId.set(key.id, object)
      byThumbprint.set(key.thumbprint.toUpperCase(), object)
    } catch {
      // An unreadable key is skipped: items naming it fail as "no key", the worker stays up.
    }
  }
}

const decryptRequest = (request: DecryptRequest): Answer => {
  const keys = owners.get(request.owner)
  const begun = performance.now()
  const results: Array<DecryptResult> = request.items.map((item) => {
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
  return { id: request.id, results, micros: Math.round((performance.now() - begun) * 1000) }
}

parentPort?.on("message", (message: { type: string; owner?: number; keys?: Array<KeyMessage>; requests?: Array<DecryptRequest> }) => {
  if (message.type === "keys") return setKeys(message.owner ?? 0, message.keys ?? [])
  if (message.type !== "decrypt") return
  let held: Array<Answer> = []
  let heldItems = 0
  for (const request of message.requests ?? []) {
    held.push(decryptRequest(request))
    heldItems += request.items.length
    if (heldItems >= answerItems) {
      parentPort?.postMessage({ answers: held })
      held = []
      heldItems = 0
    }
  }
  if (held.length > 0) parentPort?.postMessage({ answers: held })
})
