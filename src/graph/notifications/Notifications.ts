/**
 * The wire shapes Microsoft Graph POSTs to the connector's webhook (protocols.md §1.6): change notifications
 * (basic or rich, with `encryptedContent`) and lifecycle notifications. Decoded at the edge, never trusted further.
 */
import { Schema } from "effect"

/** `encryptedContent` of a rich notification. */
export const EncryptedContent = Schema.Struct({
  data: Schema.String,
  dataKey: Schema.String,
  dataSignature: Schema.String,
  encryptionCertificateId: Schema.String,
  encryptionCertificateThumbprint: Schema.String
})
export type EncryptedContent = typeof EncryptedContent.Type

export const ResourceData = Schema.Struct({
  "@odata.type": Schema.optionalKey(Schema.String),
  "@odata.id": Schema.optionalKey(Schema.String),
  id: Schema.optionalKey(Schema.String)
})

/** One item of `value[]`. Optional fields are those Microsoft's own samples omit. */
export const ChangeNotification = Schema.Struct({
  id: Schema.optionalKey(Schema.String),
  subscriptionId: Schema.String,
  clientState: Schema.optionalKey(Schema.NullOr(Schema.String)),
  changeType: Schema.String,
  resource: Schema.optionalKey(Schema.String),
  resourceData: Schema.optionalKey(Schema.NullOr(ResourceData)),
  subscriptionExpirationDateTime: Schema.optionalKey(Schema.String),
  tenantId: Schema.optionalKey(Schema.String),
  organizationId: Schema.optionalKey(Schema.String),
  encryptedContent: Schema.optionalKey(Schema.NullOr(EncryptedContent))
})
export type ChangeNotification = typeof ChangeNotification.Type

export const ChangeNotificationCollection = Schema.Struct({
  value: Schema.Array(ChangeNotification),
  validationTokens: Schema.optionalKey(Schema.Array(Schema.String))
})
export type ChangeNotificationCollection = typeof ChangeNotificationCollection.Type

/** The documented lifecycle events; anything else (including the docs' "a or b or c" placeholder) is rejected. */
export const LifecycleEvents = ["reauthorizationRequired", "subscriptionRemoved", "missed"] as const
export const LifecycleEvent = Schema.Literals(LifecycleEvents)
export type LifecycleEvent = typeof LifecycleEvent.Type

export const LifecycleNotification = Schema.Struct({
  subscriptionId: Schema.String,
  subscriptionExpirationDateTime: Schema.optionalKey(Schema.String),
  tenantId: Schema.optionalKey(Schema.String),
  clientState: Schema.optionalKey(Schema.NullOr(Schema.String)),
  lifecycleEvent: LifecycleEvent
})
export type LifecycleNotification = typeof LifecycleNotification.Type

export const LifecycleNotificationCollection = Schema.Struct({
  value: Schema.Array(LifecycleNotification)
})
export type LifecycleNotificationCollection = typeof LifecycleNotificationCollection.Type

/** The decrypted `encryptedContent.data` of a presence notification: a Graph presence plus OData annotations. */
export const decodeChangeNotifications = Schema.decodeUnknownExit(ChangeNotificationCollection)
export const decodeLifecycleNotifications = Schema.decodeUnknownExit(LifecycleNotificationCollection)

/** The user id a presence/user notification is about: `resourceData.id`, else the last segment of `resource`. */
export const notificationUserId = (item: ChangeNotification): string | undefined => {
  const fromData = item.resourceData?.id
  if (fromData !== undefined && fromData.length > 0) return fromData
  const resource = item.resource
  if (resource === undefined) return undefined
  const match = /([^/('")]+)['")]*\s*$/.exec(resource)
  return match?.[1]
}
