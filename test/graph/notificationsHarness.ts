/** Test helpers: the webhook and other router layers on 127.0.0.1 with an ephemeral port, and POSTs to them. */
import { Context, Effect, Layer, Redacted } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { CertificateStore } from "../../src/graph/notifications/crypto/CertificateStore.ts"
import { encryptPayload, inspectCertificate } from "../../src/graph/notifications/crypto/RichCrypto.ts"
import { NodeHttpServer } from "@effect/platform-node"
import { createServer } from "node:http"
import { NotificationPipeline, NotificationRoutes } from "../../src/graph/notifications/NotificationRoutes.ts"
import { NotificationsInbox } from "../../src/graph/notifications/NotificationsInbox.ts"
import {
  defaultSubscriptionSettings,
  SubscriptionSettings,
  type SubscriptionSettingsOptions
} from "../../src/graph/subscriptions/SubscriptionSettings.ts"
import { JWKS_PATH, JwksRoutes, SimJwks } from "../../src/simulators/graph/SimJwks.ts"
import { nodeServer } from "../../src/http/Server.ts"
import { fileState } from "../support/state.ts"
import { tempDir } from "../support/tempDir.ts"

/** The connector's own server (src/http/Server.ts): the notification POST is taken before effect's server, as in production. */
export const localServer = nodeServer({ port: 0, host: "127.0.0.1" })

/** A server the connector did not make: every request goes through effect's server and the routes (as with tracing on). */
export const routesOnlyServer = NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })

/** Which server the webhook runs on: the connector's (`node`, the default) or one that serves everything by the routes. */
export type WebhookServerKind = "node" | "routes"

export const baseUrlOf = (server: HttpServer.HttpServer["Service"]): string =>
  `http://127.0.0.1:${"port" in server.address ? server.address.port : 0}`

/**
 * The connector's webhook (routes, inbox, key store, decryption pool, validation tokens) on a 127.0.0.1 server, with
 * tenant `default`'s state (the notification keys) in the files of `dataDir`.
 */
export const webhookServer = (settings: SubscriptionSettingsOptions, dataDir: string, server: WebhookServerKind = "node") =>
  HttpRouter.serve(NotificationRoutes, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provideMerge(NotificationPipeline.pipe(
      Layer.provideMerge(Layer.merge(SubscriptionSettings.layer(settings), fileState(dataDir)))
    )),
    Layer.provideMerge(server === "node" ? localServer : routesOnlyServer)
  )

/** Builds `layer` (which must include an HttpServer) in the current scope and returns its context and base URL. */
export const buildServer = <A, E, R>(layer: Layer.Layer<A | HttpServer.HttpServer, E, R>) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(layer)
    return { context, baseUrl: baseUrlOf(Context.get(context, HttpServer.HttpServer)) }
  })

export const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  Effect.promise(async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body)
    })
    return { status: response.status, contentType: response.headers.get("content-type"), text: await response.text() }
  })

export const APP_ID = "11111111-2222-3333-4444-555555555555"
export const TENANT = "aaaabbbb-0000-cccc-1111-dddd2222eeee"

/**
 * The webhook with rich notifications on real sockets: a JWKS (the simulator's, for validation tokens), the connector's
 * webhook with 2 decrypt workers and `options`, presence subscription `sub-1` registered, and `richItem` sealing a
 * presence for its key as Graph does.
 */
export const richWebhook = (options: Partial<SubscriptionSettingsOptions>, server: WebhookServerKind = "node") =>
  Effect.gen(function*() {
    const jwksServer = yield* buildServer(
      HttpRouter.serve(JwksRoutes, { disableLogger: true, disableListenLog: true }).pipe(
        Layer.provideMerge(SimJwks.layer),
        Layer.provideMerge(localServer)
      )
    )
    const jwks = Context.get(jwksServer.context, SimJwks)
    const dataDir = yield* tempDir
    const settings = defaultSubscriptionSettings({
      publicBaseUrl: "https://connector.example",
      appId: APP_ID,
      jwksUrl: jwksServer.baseUrl + JWKS_PATH,
      decryptWorkers: 2,
      ...options
    })
    const connector = yield* buildServer(webhookServer(settings, dataDir, server))
    const inbox = Context.get(connector.context, NotificationsInbox)
    const certificate = yield* Context.get(connector.context, CertificateStore).current
    yield* inbox.register({ id: "sub-1", kind: "presence", key: "shard-0", clientState: Redacted.make("secret-state") })
    const publicKey = inspectCertificate(certificate.certificate).publicKey
    const richItem = (userId: string, presence: object, overrides: Record<string, unknown> = {}) => ({
      subscriptionId: "sub-1",
      clientState: "secret-state",
      changeType: "updated",
      tenantId: TENANT,
      resource: `communications/presences/${userId}`,
      subscriptionExpirationDateTime: "2030-01-01T00:00:00Z",
      resourceData: { "@odata.type": "#microsoft.graph.presence", "@odata.id": `users/${userId}/presence`, id: userId },
      encryptedContent: {
        ...encryptPayload(publicKey, JSON.stringify(presence)),
        encryptionCertificateId: certificate.id,
        encryptionCertificateThumbprint: certificate.thumbprint
      },
      ...overrides
    })
    return {
      context: connector.context,
      inbox,
      jwks,
      richItem,
      url: connector.baseUrl + settings.notificationPath,
      lifecycleUrl: connector.baseUrl + settings.lifecyclePath
    }
  })
