/**
 * A decrypted rich item checked before it goes on as a presence (Decryption.ts): it decrypted, carries a presence, and
 * names the user its notification names.
 */
import { Result } from "effect"
import { decodeGraphPresenceResult, type GraphPresence } from "../../domain/Presence.ts"
import { sameTeamsUser } from "../../domain/TeamsId.ts"
import type { DecryptResult } from "./crypto/RichCrypto.ts"
import { type ChangeNotification, notificationUserId } from "./Notifications.ts"
import type { RejectReason } from "./Rejections.ts"

export type DecryptedCheck =
  | { readonly ok: true; readonly presence: GraphPresence }
  | {
    readonly ok: false
    readonly reason: RejectReason
    readonly message: string
    readonly subscriptionId?: string
    readonly userId?: string
  }

/**
 * Checks one decrypted item: the presence it carries, or why it is rejected (it did not decrypt, is not a presence,
 * or names another user than the notification). Synchronous and without state: it runs once per item of a burst.
 */
export const checkDecrypted = (item: ChangeNotification, result: DecryptResult): DecryptedCheck => {
  if (!result.ok) return { ok: false, reason: result.reason, message: result.message, subscriptionId: item.subscriptionId }
  let json: unknown
  try {
    json = JSON.parse(result.plaintext)
  } catch (error) {
    return { ok: false, reason: "decrypt", message: `decrypted content is not a presence: ${String(error)}` }
  }
  const decoded = decodeGraphPresenceResult(json)
  if (Result.isFailure(decoded)) {
    return { ok: false, reason: "decrypt", message: `decrypted content is not a presence: ${decoded.failure.message}` }
  }
  const presence = decoded.success
  const claimed = notificationUserId(item)
  if (claimed !== undefined && !sameTeamsUser(claimed, presence.id)) {
    return { ok: false, reason: "decrypt", message: "decrypted presence names another user than the notification", userId: claimed }
  }
  return { ok: true, presence }
}
