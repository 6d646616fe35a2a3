/**
 * Builds the change-notification items the simulator POSTs, in the shape of Microsoft's published samples
 * (graph-samples.json `notification_presence_rich`, `notification_presence_basic`); rich items are encrypted exactly
 * as Graph does, with the subscription's certificate.
 */
import { randomFillSync } from "node:crypto"
import { encryptPayload, inspectCertificate } from "../../../graph/notifications/crypto/RichCrypto.ts"
import { isoSeconds, type SimPresence, type SimUser } from "../SimState.ts"
import type { SimSubscription } from "../SimSubscriptions.ts"

export type NotificationItem = Record<string, unknown>

/** `subscriptionExpirationDateTime` by expiry: written once per subscription and renewal, not once per item. */
const expiryTexts = new Map<number, string>()

const expiryText = (expiresAt: number): string => {
  let text = expiryTexts.get(expiresAt)
  if (text === undefined) {
    text = isoSeconds(expiresAt) + "Z"
    if (expiryTexts.size >= 1024) expiryTexts.clear()
    expiryTexts.set(expiresAt, text)
  }
  return text
}

const base = (subscription: SimSubscription, changeType: string, resource: string, resourceData: Record<string, unknown>) => ({
  subscriptionId: subscription.id,
  clientState: subscription.clientState,
  changeType,
  tenantId: subscription.tenantId,
  resource,
  subscriptionExpirationDateTime: expiryText(subscription.expiresAt),
  resourceData,
  organizationId: subscription.tenantId
})

type InspectedCertificate = ReturnType<typeof inspectCertificate>

/**
 * Parsed encryption certificates by their base64 contents: a subscription's certificate is parsed once, not once per
 * item (X.509 parsing costs more than the RSA encryption it serves). Few subscriptions share few certificates; the
 * bound only keeps certificates of long-gone subscriptions from piling up.
 */
const inspected = new Map<string, InspectedCertificate>()
const INSPECTED_MAX = 64

const inspectOnce = (base64Der: string): InspectedCertificate => {
  const known = inspected.get(base64Der)
  if (known !== undefined) return known
  const fresh = inspectCertificate(base64Der)
  if (inspected.size >= INSPECTED_MAX) inspected.delete(inspected.keys().next().value!)
  inspected.set(base64Der, fresh)
  return fresh
}

/**
 * Fresh random AES keys, 32 bytes each, cut from one buffer filled at a time: one `randomFillSync` per 128 keys costs
 * a fraction of 128 `randomBytes(32)` calls (≈ 30 µs each under load). Every key is used once, right away.
 */
const KEY_BYTES = 32
const keyPool = Buffer.alloc(KEY_BYTES * 128)
let keyOffset = keyPool.length

const freshKey = (): Buffer => {
  if (keyOffset >= keyPool.length) {
    randomFillSync(keyPool)
    keyOffset = 0
  }
  const key = keyPool.subarray(keyOffset, keyOffset + KEY_BYTES)
  keyOffset += KEY_BYTES
  return key
}

export const presenceItem = (subscription: SimSubscription, presence: SimPresence): NotificationItem => {
  const resourceData = { "@odata.id": `users/${presence.id}/presence`, "@odata.type": "#microsoft.graph.presence", id: presence.id }
  const item = base(subscription, "updated", `communications/presences/${presence.id}`, resourceData)
  if (!subscription.includeResourceData || subscription.encryptionCertificate === null) return item
  const { publicKey, thumbprint } = inspectOnce(subscription.encryptionCertificate)
  const sealed = encryptPayload(publicKey, JSON.stringify({ ...resourceData, ...presence }), freshKey())
  return {
    ...item,
    encryptedContent: {
      data: sealed.data,
      dataSignature: sealed.dataSignature,
      dataKey: sealed.dataKey,
      encryptionCertificateId: subscription.encryptionCertificateId ?? "",
      encryptionCertificateThumbprint: thumbprint
    }
  }
}

export const userItem = (subscription: SimSubscription, user: SimUser, changeType: "updated" | "deleted"): NotificationItem =>
  base(subscription, changeType, `Users/${user.id}`, {
    "@odata.type": "#Microsoft.Graph.User",
    "@odata.id": `Users/${user.id}`,
    id: user.id,
    organizationId: subscription.tenantId
  })

export const lifecycleItem = (subscription: SimSubscription, lifecycleEvent: string): NotificationItem => ({
  lifecycleEvent,
  subscriptionId: subscription.id,
  subscriptionExpirationDateTime: isoSeconds(subscription.expiresAt) + "Z",
  clientState: subscription.clientState,
  tenantId: subscription.tenantId
})
