/**
 * Rich batch items for tests that hand the decryption pipeline a pool of their own: the item's encrypted data is the
 * plaintext the test's pool answers with.
 */
import { Redacted } from "effect"
import type { GraphPresence } from "../../src/domain/Presence.ts"
import type { BatchItem } from "../../src/graph/notifications/Intake.ts"

/** The subscription every item of `richBatchItem` belongs to (clientState "state"). */
export const subscription = { id: "sub-1", kind: "presence" as const, key: "shard-1", clientState: Redacted.make("state") }

/** User `presence.id`'s rich item of subscription `sub-1`, carrying `presence` as its data. */
export const richBatchItem = (presence: GraphPresence): BatchItem => ({
  subscription,
  item: {
    subscriptionId: "sub-1",
    changeType: "updated",
    resourceData: { id: presence.id },
    encryptedContent: {
      data: JSON.stringify(presence),
      dataKey: "",
      dataSignature: "",
      encryptionCertificateId: "",
      encryptionCertificateThumbprint: ""
    }
  }
})
