/**
 * The warm-up when a connector's notification pipeline starts (crypto/WarmUp.ts): before any notification, the
 * validation-token keys were fetched from the JWKS and every decryption worker decrypted an item with the tenant's key;
 * the first notification then fetches nothing. A JWKS that cannot be reached changes nothing but the warm-up's outcome.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Layer, Redacted, Stream } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { CertificateStore } from "../../src/graph/notifications/crypto/CertificateStore.ts"
import { DecryptPool } from "../../src/graph/notifications/crypto/DecryptPool.ts"
import { encryptPayload, inspectCertificate } from "../../src/graph/notifications/crypto/RichCrypto.ts"
import { NotificationsWarmUp } from "../../src/graph/notifications/crypto/WarmUp.ts"
import { NotificationsInbox } from "../../src/graph/notifications/NotificationsInbox.ts"
import { defaultSubscriptionSettings } from "../../src/graph/subscriptions/SubscriptionSettings.ts"
import { JWKS_PATH, SimJwks } from "../../src/simulators/graph/SimJwks.ts"
import { tempDir } from "../support/tempDir.ts"
import { APP_ID, buildServer, localServer, post, TENANT, webhookServer } from "./notificationsHarness.ts"

/** A JWKS server that counts its GETs. */
const countingJwks = Effect.gen(function*() {
  const gets = { count: 0 }
  const routes = HttpRouter.use(Effect.fnUntraced(function*(router) {
    const jwks = yield* SimJwks
    yield* router.add("GET", JWKS_PATH, Effect.sync(() => {
      gets.count++
      return HttpServerResponse.jsonUnsafe(jwks.jwks)
    }))
  }))
  const server = yield* buildServer(
    HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provideMerge(SimJwks.layer),
      Layer.provideMerge(localServer)
    )
  )
  return { gets, url: server.baseUrl + JWKS_PATH, jwks: Context.get(server.context, SimJwks) }
})

const startConnector = (jwksUrl: string, includeResourceData = true) =>
  Effect.gen(function*() {
    const settings = defaultSubscriptionSettings({ publicBaseUrl: "https://connector.example", appId: APP_ID, jwksUrl, decryptWorkers: 2, includeResourceData })
    const connector = yield* buildServer(webhookServer(settings, yield* tempDir))
    return { ...connector, url: connector.baseUrl + settings.notificationPath }
  })

describe("the rich-notification warm-up", () => {
  it.live("fetches the JWKS and warms every worker with the tenant's key before the first notification", () =>
    Effect.gen(function*() {
      const jwks = yield* countingJwks
      const connector = yield* startConnector(jwks.url)
      const outcome = yield* Deferred.await(Context.get(connector.context, NotificationsWarmUp).done)
      assert.deepStrictEqual(outcome, { jwksFetched: true, workersDecrypted: 2, workers: 2 })
      assert.strictEqual(jwks.gets.count, 1, "the JWKS was fetched before any notification")
      // The workers timed the warm-up's items: they have decrypted with the tenant's key already.
      assert.isDefined(Context.get(connector.context, DecryptPool).itemMicros())

      // The first notification is verified and decrypted without fetching the key set again.
      const inbox = Context.get(connector.context, NotificationsInbox)
      yield* inbox.register({ id: "sub-1", kind: "presence", key: "shard-0", clientState: Redacted.make("secret-state") })
      const certificate = yield* Context.get(connector.context, CertificateStore).current
      const first = yield* Deferred.make<string>()
      yield* inbox.presences.pipe(Stream.runForEach((p) => Deferred.succeed(first, `${p.userId} ${p.presence.availability}`)), Effect.forkScoped)
      const item = {
        subscriptionId: "sub-1",
        clientState: "secret-state",
        changeType: "updated",
        tenantId: TENANT,
        resource: "communications/presences/user-1",
        subscriptionExpirationDateTime: "2030-01-01T00:00:00Z",
        resourceData: { "@odata.type": "#microsoft.graph.presence", "@odata.id": "users/user-1/presence", id: "user-1" },
        encryptedContent: {
          ...encryptPayload(inspectCertificate(certificate.certificate).publicKey, JSON.stringify({ id: "user-1", availability: "Busy", activity: "InACall" })),
          encryptionCertificateId: certificate.id,
          encryptionCertificateThumbprint: certificate.thumbprint
        }
      }
      const token = yield* jwks.jwks.validationToken(APP_ID, TENANT)
      assert.strictEqual((yield* post(connector.url, { value: [item], validationTokens: [token] })).status, 202)
      assert.strictEqual(yield* Deferred.await(first), "user-1 Busy")
      assert.strictEqual(jwks.gets.count, 1)
    }).pipe(Effect.scoped))

  it.live("a JWKS that cannot be reached leaves start-up and the workers' warm-up as they are", () =>
    Effect.gen(function*() {
      // A port nothing listens on: the JWKS server is started and stopped again.
      const closedUrl = yield* countingJwks.pipe(Effect.map((jwks) => jwks.url), Effect.scoped)
      const connector = yield* startConnector(closedUrl)
      const outcome = yield* Deferred.await(Context.get(connector.context, NotificationsWarmUp).done)
      assert.deepStrictEqual(outcome, { jwksFetched: false, workersDecrypted: 2, workers: 2 })
    }).pipe(Effect.scoped))

  it.live("without rich notifications there is nothing to warm", () =>
    Effect.gen(function*() {
      const jwks = yield* countingJwks
      const connector = yield* startConnector(jwks.url, false)
      const outcome = yield* Deferred.await(Context.get(connector.context, NotificationsWarmUp).done)
      assert.deepStrictEqual(outcome, { jwksFetched: false, workersDecrypted: 0, workers: 2 })
      assert.strictEqual(jwks.gets.count, 0)
    }).pipe(Effect.scoped))
})
