/**
 * Graph's documented rules for a subscription (protocols.md §1.5), as checks the simulator's store runs: the resource
 * and its change types, maximum expirations (60 min presence, 41,760 min users, against Graph's clock), ≤ 650 ids,
 * presence subscriptions only for delegated users, the encryption certificate of rich subscriptions, a quota of 100
 * users subscriptions per app (none for presence) and one
 * presence subscription per delegated user (409 ExtensionError with Microsoft's text). No state and no HTTP here.
 */
import { Effect, Schema } from "effect"
import { randomUUID } from "node:crypto"
import { inspectCertificate } from "../../graph/notifications/crypto/RichCrypto.ts"
import { isoSeconds, type Principal, SimHttpError } from "./SimState.ts"

export const PRESENCE_MAX_MINUTES = 60
export const USERS_MAX_MINUTES = 41_760
export const MAX_PRESENCE_IDS = 650
export const SUBSCRIPTION_QUOTA = 100
export const DUPLICATE_PRESENCE_MESSAGE =
  "Operation: Create; Exception: [Status Code: Conflict; Reason: A subscripton already exists. It must be deleted before a another can be made.]"

export const CreateSubscriptionBody = Schema.Struct({
  changeType: Schema.String,
  notificationUrl: Schema.String,
  lifecycleNotificationUrl: Schema.optionalKey(Schema.NullOr(Schema.String)),
  resource: Schema.String,
  expirationDateTime: Schema.String,
  clientState: Schema.optionalKey(Schema.NullOr(Schema.String)),
  includeResourceData: Schema.optionalKey(Schema.NullOr(Schema.Boolean)),
  encryptionCertificate: Schema.optionalKey(Schema.NullOr(Schema.String)),
  encryptionCertificateId: Schema.optionalKey(Schema.NullOr(Schema.String)),
  latestSupportedTlsVersion: Schema.optionalKey(Schema.String)
})
export type CreateSubscriptionBody = typeof CreateSubscriptionBody.Type

export const UpdateSubscriptionBody = Schema.Struct({
  expirationDateTime: Schema.optionalKey(Schema.String),
  encryptionCertificate: Schema.optionalKey(Schema.NullOr(Schema.String)),
  encryptionCertificateId: Schema.optionalKey(Schema.NullOr(Schema.String)),
  notificationUrl: Schema.optionalKey(Schema.String)
})
export type UpdateSubscriptionBody = typeof UpdateSubscriptionBody.Type

export interface SimSubscription {
  readonly id: string
  readonly kind: "presence" | "users"
  readonly resource: string
  readonly changeType: string
  notificationUrl: string
  readonly lifecycleNotificationUrl: string | null
  expiresAt: number
  readonly clientState: string | null
  readonly includeResourceData: boolean
  encryptionCertificate: string | null
  encryptionCertificateId: string | null
  readonly applicationId: string
  readonly tenantId: string
  /** The delegated user's id, or the app id for app-only subscriptions. */
  readonly creatorId: string
  readonly userIds: ReadonlySet<string>
  /** Fault: Graph silently stops delivering for this subscription. */
  silent: boolean
}

type Resource = { kind: "presence"; ids: Array<string> } | { kind: "users" }

export const badRequest = (message: string, code = "InvalidRequest") => new SimHttpError({ status: 400, code, message })

const forbidden = (reason: string) =>
  new SimHttpError({ status: 403, code: "ExtensionError", message: `Operation: Create; Exception: [Status Code: Forbidden; Reason: ${reason}]` })

/** `/communications/presences?$filter=id in ('a','b')`, `communications/presences/{id}`, or `/users`. */
export const parseResource = (resource: string): Resource | undefined => {
  const trimmed = resource.trim().replace(/^\/+/, "")
  if (/^users$/i.test(trimmed)) return { kind: "users" }
  const single = /^communications\/presences\/([^/?]+)$/i.exec(trimmed)
  if (single !== null) return { kind: "presence", ids: [decodeURIComponent(single[1]!)] }
  const bulk = /^communications\/presences\?\$filter=id\s+in\s+\((.*)\)\s*$/i.exec(decodeURIComponent(trimmed))
  if (bulk === null) return undefined
  const ids = [...bulk[1]!.matchAll(/'([^']*)'/g)].map((m) => m[1]!)
  return { kind: "presence", ids }
}

/** The expiry as epoch milliseconds, within the kind's maximum as Graph's clock (this machine's + skew) sees it. */
export const checkExpiry = (kind: SimSubscription["kind"], raw: string, graphNow: number) => {
  const at = Date.parse(raw)
  if (!Number.isFinite(at)) return Effect.fail(badRequest(`Invalid expirationDateTime '${raw}'.`))
  const max = kind === "presence" ? PRESENCE_MAX_MINUTES : USERS_MAX_MINUTES
  if (at <= graphNow) return Effect.fail(badRequest("Subscription expiration must be in the future."))
  if (at > graphNow + max * 60_000 + 1_000) {
    return Effect.fail(badRequest(`Subscription expiration can only be ${max} minutes in the future.`))
  }
  return Effect.succeed(at)
}

export const checkCertificate = (certificate: string | null | undefined, certificateId: string | null | undefined) => {
  if (certificate == null || certificate === "" || certificateId == null || certificateId === "") {
    return Effect.fail(badRequest("encryptionCertificate and encryptionCertificateId are required when includeResourceData is true."))
  }
  return Effect.try({
    try: () => inspectCertificate(certificate),
    catch: () => badRequest("encryptionCertificate is not a valid base64 DER X.509 certificate.")
  }).pipe(Effect.flatMap(({ publicKey }) => {
    const bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0
    return publicKey.asymmetricKeyType === "rsa" && bits >= 2048 && bits <= 4096
      ? Effect.void
      : Effect.fail(badRequest("encryptionCertificate must hold an RSA key of 2048 to 4096 bits."))
  }))
}

/** The resource, the notification URL and the change types the resource allows, before any expiry or certificate. */
export const checkResource = Effect.fnUntraced(function*(principal: Principal, body: CreateSubscriptionBody) {
  const parsed = parseResource(body.resource)
  if (parsed === undefined) return yield* badRequest(`Resource '${body.resource}' is not supported.`)
  if (!/^https:\/\//i.test(body.notificationUrl) && !/^http:\/\/(127\.0\.0\.1|localhost)[:/]/i.test(body.notificationUrl)) {
    return yield* badRequest("Subscription validation request failed. NotificationUrl must use https.", "ValidationError")
  }
  const changeTypes = body.changeType.split(",").map((c) => c.trim().toLowerCase())
  if (parsed.kind === "presence") {
    if (principal.kind !== "delegated" || principal.userId === undefined) {
      return yield* forbidden("Application permissions are not supported for presence subscriptions.")
    }
    if (changeTypes.some((c) => c !== "updated")) return yield* badRequest("Presence subscriptions support changeType 'updated' only.")
    if (parsed.ids.length === 0) return yield* badRequest("The $filter must name at least one id.")
    if (parsed.ids.length > MAX_PRESENCE_IDS) {
      return yield* badRequest(`Too many ids in the filter: at most ${MAX_PRESENCE_IDS} are allowed.`, "ExtensionError")
    }
  } else {
    if (changeTypes.some((c) => c !== "updated" && c !== "deleted")) {
      return yield* badRequest("Users subscriptions support changeType 'updated' and 'deleted'.")
    }
    if (body.includeResourceData === true) return yield* badRequest("Rich notifications are not supported for users.")
  }
  return parsed
})

/** The quota of the app and one presence subscription per delegated user; returns the creator's id. */
export const checkQuota = (principal: Principal, kind: SimSubscription["kind"], existing: Iterable<SimSubscription>) => {
  const mine = [...existing].filter((s) => s.applicationId === principal.appId)
  // The quota is Microsoft Entra's, for user (and group) subscriptions; Graph lists none for presence.
  if (kind === "users" && mine.filter((s) => s.kind === "users").length >= SUBSCRIPTION_QUOTA) {
    return Effect.fail(forbidden(`Subscription quota of ${SUBSCRIPTION_QUOTA} reached for this application and tenant.`))
  }
  const creatorId = principal.kind === "delegated" && principal.userId !== undefined ? principal.userId : principal.appId
  if (kind === "presence" && mine.some((s) => s.kind === "presence" && s.creatorId === creatorId)) {
    return Effect.fail(new SimHttpError({ status: 409, code: "ExtensionError", message: DUPLICATE_PRESENCE_MESSAGE }))
  }
  return Effect.succeed(creatorId)
}

/** The subscription a checked request creates (not yet stored). */
export const newSubscription = (
  principal: Principal,
  body: CreateSubscriptionBody,
  resource: Resource,
  expiresAt: number,
  creatorId: string
): SimSubscription => ({
  id: randomUUID(),
  kind: resource.kind,
  resource: body.resource,
  changeType: body.changeType,
  notificationUrl: body.notificationUrl,
  lifecycleNotificationUrl: body.lifecycleNotificationUrl ?? null,
  expiresAt,
  clientState: body.clientState ?? null,
  includeResourceData: body.includeResourceData === true,
  encryptionCertificate: body.encryptionCertificate ?? null,
  encryptionCertificateId: body.encryptionCertificateId ?? null,
  applicationId: principal.appId,
  tenantId: principal.tenantId,
  creatorId,
  userIds: new Set(resource.kind === "presence" ? resource.ids.map((id) => id.toLowerCase()) : []),
  silent: false
})

/** A subscription as Graph answers it; the list leaves out the clientState. */
export const subscriptionJson = (s: SimSubscription, options?: { readonly forList?: boolean }): Record<string, unknown> => ({
  id: s.id,
  resource: s.resource,
  applicationId: s.applicationId,
  changeType: s.changeType,
  clientState: options?.forList === true ? null : s.clientState,
  notificationUrl: s.notificationUrl,
  lifecycleNotificationUrl: s.lifecycleNotificationUrl,
  expirationDateTime: isoSeconds(s.expiresAt) + "Z",
  creatorId: s.creatorId,
  latestSupportedTlsVersion: "v1_2",
  encryptionCertificate: "",
  encryptionCertificateId: s.encryptionCertificateId ?? "",
  includeResourceData: s.includeResourceData,
  notificationContentType: "application/json"
})
