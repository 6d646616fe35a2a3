/**
 * The simulator's subscription store and Graph's documented rules for it (protocols.md §1.5): resources, maximum
 * expirations (60 min presence, 41,760 min users), ≤ 650 ids, one presence subscription per delegated user (409
 * ExtensionError with Microsoft's text), a quota of 100 users subscriptions per app (none for presence), vanishing at expiry, 404 for unknown ids. No HTTP here.
 */
import { Clock, Context, Effect, Layer, Schema } from "effect"
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

const badRequest = (message: string, code = "InvalidRequest") => new SimHttpError({ status: 400, code, message })
const notFound = (id: string) =>
  new SimHttpError({ status: 404, code: "ResourceNotFound", message: `The object was not found. Subscription '${id}' does not exist.` })

/** `/communications/presences?$filter=id in ('a','b')`, `communications/presences/{id}`, or `/users`. */
export const parseResource = (resource: string): { kind: "presence"; ids: Array<string> } | { kind: "users" } | undefined => {
  const trimmed = resource.trim().replace(/^\/+/, "")
  if (/^users$/i.test(trimmed)) return { kind: "users" }
  const single = /^communications\/presences\/([^/?]+)$/i.exec(trimmed)
  if (single !== null) return { kind: "presence", ids: [decodeURIComponent(single[1]!)] }
  const bulk = /^communications\/presences\?\$filter=id\s+in\s+\((.*)\)\s*$/i.exec(decodeURIComponent(trimmed))
  if (bulk === null) return undefined
  const ids = [...bulk[1]!.matchAll(/'([^']*)'/g)].map((m) => m[1]!)
  return { kind: "presence", ids }
}

export class SimSubscriptions extends Context.Service<SimSubscriptions, {
  /** Checks every rule except the validation handshake; returns the subscription not yet stored. */
  prepare(principal: Principal, body: CreateSubscriptionBody): Effect.Effect<SimSubscription, SimHttpError>
  store(subscription: SimSubscription): Effect.Effect<void>
  get(principal: Principal, id: string): Effect.Effect<SimSubscription, SimHttpError>
  list(principal: Principal): Effect.Effect<ReadonlyArray<SimSubscription>>
  update(principal: Principal, id: string, body: UpdateSubscriptionBody): Effect.Effect<SimSubscription, SimHttpError>
  remove(principal: Principal, id: string): Effect.Effect<void, SimHttpError>
  reauthorize(principal: Principal, id: string): Effect.Effect<void, SimHttpError>
  /** Live subscriptions (expired ones are dropped first). */
  readonly live: Effect.Effect<ReadonlyArray<SimSubscription>>
  /** Control API: find any live subscription, bypassing ownership. */
  find(id: string): Effect.Effect<SimSubscription | undefined>
  /** Control API: expire now. */
  expireNow(id: string): Effect.Effect<boolean>
  counters(): { readonly created: number; readonly deleted: number; readonly expired: number }
  /**
   * Control API: how far Graph's clock is ahead of this machine's (negative: behind). Only the expiry check reads it,
   * which is where a real skew between the connector and Graph shows: a request for exactly the maximum fails.
   */
  clockSkewMillis: number
  toJson(subscription: SimSubscription, options?: { readonly forList?: boolean }): Record<string, unknown>
}>()("teams-presence-connector/simulators/graph/SimSubscriptions") {
  static readonly layer = Layer.effect(
    SimSubscriptions,
    Effect.sync(() => {
      const subscriptions = new Map<string, SimSubscription>()
      let created = 0
      let deleted = 0
      let expired = 0
      let clockSkewMillis = 0

      const purge = Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        for (const [id, subscription] of subscriptions) {
          if (subscription.expiresAt <= now) {
            subscriptions.delete(id)
            expired++
          }
        }
      })

      const ownedBy = (principal: Principal, subscription: SimSubscription) =>
        subscription.applicationId === principal.appId &&
        (principal.kind === "app" || subscription.creatorId === principal.userId)

      const checkExpiry = (kind: SimSubscription["kind"], raw: string, localNow: number) => {
        const now = localNow + clockSkewMillis
        const at = Date.parse(raw)
        if (!Number.isFinite(at)) return Effect.fail(badRequest(`Invalid expirationDateTime '${raw}'.`))
        const max = kind === "presence" ? PRESENCE_MAX_MINUTES : USERS_MAX_MINUTES
        if (at <= now) return Effect.fail(badRequest("Subscription expiration must be in the future."))
        if (at > now + max * 60_000 + 1_000) {
          return Effect.fail(badRequest(`Subscription expiration can only be ${max} minutes in the future.`))
        }
        return Effect.succeed(at)
      }

      const checkCertificate = (certificate: string | null | undefined, certificateId: string | null | undefined) => {
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

      const prepare = Effect.fnUntraced(function*(principal: Principal, body: CreateSubscriptionBody) {
        yield* purge
        const now = yield* Clock.currentTimeMillis
        const parsed = parseResource(body.resource)
        if (parsed === undefined) return yield* badRequest(`Resource '${body.resource}' is not supported.`)
        if (!/^https:\/\//i.test(body.notificationUrl) && !/^http:\/\/(127\.0\.0\.1|localhost)[:/]/i.test(body.notificationUrl)) {
          return yield* badRequest("Subscription validation request failed. NotificationUrl must use https.", "ValidationError")
        }
        const changeTypes = body.changeType.split(",").map((c) => c.trim().toLowerCase())
        if (parsed.kind === "presence") {
          if (principal.kind !== "delegated" || principal.userId === undefined) {
            return yield* new SimHttpError({
              status: 403,
              code: "ExtensionError",
              message: "Operation: Create; Exception: [Status Code: Forbidden; Reason: Application permissions are not supported for presence subscriptions.]"
            })
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
        const expiresAt = yield* checkExpiry(parsed.kind, body.expirationDateTime, now)
        if ((body.clientState ?? "").length > 128) return yield* badRequest("clientState must be at most 128 characters.")
        if (body.includeResourceData === true) yield* checkCertificate(body.encryptionCertificate, body.encryptionCertificateId)
        const mine = [...subscriptions.values()].filter((s) => s.applicationId === principal.appId)
        // The quota is Microsoft Entra's, for user (and group) subscriptions; Graph lists none for presence.
        if (parsed.kind === "users" && mine.filter((s) => s.kind === "users").length >= SUBSCRIPTION_QUOTA) {
          return yield* new SimHttpError({
            status: 403,
            code: "ExtensionError",
            message: `Operation: Create; Exception: [Status Code: Forbidden; Reason: Subscription quota of ${SUBSCRIPTION_QUOTA} reached for this application and tenant.]`
          })
        }
        const creatorId = principal.kind === "delegated" && principal.userId !== undefined ? principal.userId : principal.appId
        if (parsed.kind === "presence" && mine.some((s) => s.kind === "presence" && s.creatorId === creatorId)) {
          return yield* new SimHttpError({ status: 409, code: "ExtensionError", message: DUPLICATE_PRESENCE_MESSAGE })
        }
        return {
          id: randomUUID(),
          kind: parsed.kind,
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
          userIds: new Set(parsed.kind === "presence" ? parsed.ids.map((id) => id.toLowerCase()) : []),
          silent: false
        } satisfies SimSubscription
      })

      const get = Effect.fnUntraced(function*(principal: Principal, id: string) {
        yield* purge
        const subscription = subscriptions.get(id)
        if (subscription === undefined || !ownedBy(principal, subscription)) return yield* notFound(id)
        return subscription
      })

      const update = Effect.fnUntraced(function*(principal: Principal, id: string, body: UpdateSubscriptionBody) {
        const subscription = yield* get(principal, id)
        const now = yield* Clock.currentTimeMillis
        if (body.encryptionCertificate !== undefined || body.encryptionCertificateId !== undefined) {
          yield* checkCertificate(body.encryptionCertificate, body.encryptionCertificateId)
          subscription.encryptionCertificate = body.encryptionCertificate ?? null
          subscription.encryptionCertificateId = body.encryptionCertificateId ?? null
        }
        if (body.expirationDateTime !== undefined) {
          subscription.expiresAt = yield* checkExpiry(subscription.kind, body.expirationDateTime, now)
        }
        if (body.notificationUrl !== undefined) subscription.notificationUrl = body.notificationUrl
        return subscription
      })

      const toJson = (s: SimSubscription, options?: { readonly forList?: boolean }): Record<string, unknown> => ({
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

      return SimSubscriptions.of({
        prepare,
        store: (subscription) =>
          Effect.sync(() => {
            subscriptions.set(subscription.id, subscription)
            created++
          }),
        get,
        list: (principal) => purge.pipe(Effect.map(() => [...subscriptions.values()].filter((s) => ownedBy(principal, s)))),
        update,
        remove: (principal, id) =>
          get(principal, id).pipe(Effect.map(() => {
            subscriptions.delete(id)
            deleted++
          })),
        reauthorize: (principal, id) => get(principal, id).pipe(Effect.asVoid),
        live: purge.pipe(Effect.map(() => [...subscriptions.values()])),
        find: (id) => purge.pipe(Effect.map(() => subscriptions.get(id))),
        expireNow: (id) =>
          Effect.sync(() => {
            const had = subscriptions.delete(id)
            if (had) expired++
            return had
          }),
        counters: () => ({ created, deleted, expired }),
        get clockSkewMillis() {
          return clockSkewMillis
        },
        set clockSkewMillis(value: number) {
          clockSkewMillis = value
        },
        toJson
      })
    })
  )
}
