/**
 * The Graph subscription calls the manager makes (protocols.md §1.5), behind a narrow service so renewal timing can be
 * tested with a fake under TestClock while the real one goes through GraphClient (retries, tokens, typed errors).
 */
import { Context, Effect, Layer, Schema } from "effect"
import { clip } from "../../domain/LogText.ts"
import type { AuthError } from "../auth/AuthError.ts"
import { GraphClient } from "../client/GraphClient.ts"
import type { GraphError } from "../client/GraphError.ts"
import type { CredentialRef } from "../client/GraphSettings.ts"

export const SubscriptionResource = Schema.Struct({
  id: Schema.String,
  resource: Schema.String,
  changeType: Schema.optionalKey(Schema.String),
  clientState: Schema.optionalKey(Schema.NullOr(Schema.String)),
  notificationUrl: Schema.optionalKey(Schema.String),
  lifecycleNotificationUrl: Schema.optionalKey(Schema.NullOr(Schema.String)),
  expirationDateTime: Schema.String,
  encryptionCertificateId: Schema.optionalKey(Schema.NullOr(Schema.String)),
  includeResourceData: Schema.optionalKey(Schema.NullOr(Schema.Boolean))
})
export type SubscriptionResource = typeof SubscriptionResource.Type

const SubscriptionList = Schema.Struct({ value: Schema.Array(SubscriptionResource) })

export interface CreateSubscription {
  readonly changeType: string
  readonly notificationUrl: string
  readonly lifecycleNotificationUrl: string
  readonly resource: string
  readonly expirationDateTime: string
  readonly clientState: string
  readonly includeResourceData: boolean
  readonly encryptionCertificate?: string
  readonly encryptionCertificateId?: string
}

export interface RenewSubscription {
  readonly expirationDateTime: string
  readonly encryptionCertificate?: string
  readonly encryptionCertificateId?: string
}

export type SubscriptionCallError = GraphError | AuthError

export class SubscriptionApi extends Context.Service<SubscriptionApi, {
  create(credential: CredentialRef, body: CreateSubscription): Effect.Effect<SubscriptionResource, SubscriptionCallError>
  renew(credential: CredentialRef, id: string, body: RenewSubscription): Effect.Effect<SubscriptionResource, SubscriptionCallError>
  /** GET /subscriptions/{id}: 404 once Graph has deleted it or it expired (protocol-notes.md). */
  get(credential: CredentialRef, id: string): Effect.Effect<SubscriptionResource, SubscriptionCallError>
  reauthorize(credential: CredentialRef, id: string): Effect.Effect<void, SubscriptionCallError>
  remove(credential: CredentialRef, id: string): Effect.Effect<void, SubscriptionCallError>
  list(credential: CredentialRef): Effect.Effect<ReadonlyArray<SubscriptionResource>, SubscriptionCallError>
}>()("teams-presence-connector/graph/subscriptions/SubscriptionApi") {
  static readonly layer = Layer.effect(
    SubscriptionApi,
    Effect.gen(function*() {
      const graph = yield* GraphClient
      const path = (id: string) => `/v1.0/subscriptions/${encodeURIComponent(id)}`
      return SubscriptionApi.of({
        create: (credential, body) =>
          graph.execute({ method: "POST", url: "/v1.0/subscriptions", credential, body, response: SubscriptionResource }),
        renew: (credential, id, body) => graph.execute({ method: "PATCH", url: path(id), credential, body, response: SubscriptionResource }),
        get: (credential, id) => graph.execute({ method: "GET", url: path(id), credential, response: SubscriptionResource }),
        reauthorize: (credential, id) => graph.executeEmpty({ method: "POST", url: `${path(id)}/reauthorize`, credential }),
        remove: (credential, id) => graph.executeEmpty({ method: "DELETE", url: path(id), credential }),
        list: (credential) =>
          graph.execute({ method: "GET", url: "/v1.0/subscriptions", credential, response: SubscriptionList }).pipe(
            Effect.map((answer) => answer.value)
          )
      })
    })
  )
}

/** The resource of a presence subscription for these ids (protocols.md §1.5). */
export const presenceResource = (userIds: ReadonlyArray<string>): string =>
  `/communications/presences?$filter=id in (${userIds.map((id) => `'${id}'`).join(",")})`

export const isNotFound = (error: SubscriptionCallError): boolean => error._tag === "GraphError" && error.status === 404
export const isAlreadyExists = (error: SubscriptionCallError): boolean =>
  error._tag === "GraphError" && error.status === 409 && error.code === "ExtensionError"
export const describeError = (error: SubscriptionCallError): string =>
  error._tag === "GraphError" ? `${clip(error.code, 60)} (HTTP ${error.status}): ${clip(error.message, 300)}` : clip(error.message, 300)
