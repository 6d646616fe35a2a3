/** Test helpers: the notification inbox and the decryption pipeline over a decrypt pool the test decides. */
import { Context, Effect, Layer, type PubSub } from "effect"
import { DecryptPool } from "../../src/graph/notifications/crypto/DecryptPool.ts"
import { ValidationTokens } from "../../src/graph/notifications/crypto/ValidationTokens.ts"
import { makeDecryption, type PushedPresence } from "../../src/graph/notifications/Decryption.ts"
import { NotificationsInbox } from "../../src/graph/notifications/NotificationsInbox.ts"
import { defaultSubscriptionSettings, SubscriptionSettings } from "../../src/graph/subscriptions/SubscriptionSettings.ts"

/** Validation tokens that are all valid and remembered: the tests here are about what follows the check. */
export const acceptedTokens = ValidationTokens.of({ verify: () => Effect.void, remembered: () => true, prime: Effect.void })

/** The inbox (built in the test's scope) over `pool`, with the default settings or the flood budget given. */
export const inboxWithPool = (pool: DecryptPool["Service"], floodLatencyBudgetMillis?: number) =>
  Layer.build(NotificationsInbox.layer.pipe(
    Layer.provide(SubscriptionSettings.layer({
      ...defaultSubscriptionSettings({ publicBaseUrl: "https://connector.example", appId: "app" }),
      ...(floodLatencyBudgetMillis === undefined ? {} : { floodLatencyBudgetMillis })
    })),
    Layer.provide(Layer.succeed(DecryptPool, pool)),
    Layer.provide(Layer.succeed(ValidationTokens, acceptedTokens))
  )).pipe(Effect.map((context) => Context.get(context, NotificationsInbox)))

/** The decryption pipeline over `pool`, publishing to `presences` (a budget of 60 s: it never reads instead). */
export const decryptionWithPool = (presences: PubSub.PubSub<PushedPresence>, pool: DecryptPool["Service"]) =>
  makeDecryption(presences, 60_000, () => Effect.void).pipe(
    Effect.provideService(DecryptPool, pool),
    Effect.provideService(ValidationTokens, acceptedTokens)
  )
