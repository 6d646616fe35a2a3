/**
 * The users subscription (push mode only): `/users` changes and deletions, created with the users credential, renewed
 * every `usersRenewMinutes`, recreated when Graph removes it or a renewal answers 404. Part of the SubscriptionManager,
 * which calls it under its lock.
 */
import { Clock, Effect, Redacted } from "effect"
import * as crypto from "node:crypto"
import { type LifecycleSignal, NotificationsInbox } from "../notifications/NotificationsInbox.ts"
import { describeError, isNotFound, SubscriptionApi } from "./SubscriptionApi.ts"
import { notificationUrls, SubscriptionSettings } from "./SubscriptionSettings.ts"
import { countFailure, countRenewal, isoIn, minutes, type UsersSubscriptionStatus } from "./SubscriptionState.ts"
import type { PersistedSubscription } from "./SubscriptionStore.ts"

export const makeUsersSubscription = Effect.fnUntraced(function*(adopted: PersistedSubscription | undefined) {
  const settings = yield* SubscriptionSettings
  const api = yield* SubscriptionApi
  const inbox = yield* NotificationsInbox
  const urls = notificationUrls(settings)
  let live = adopted
  let lastRenewalAt: number | undefined
  let status: UsersSubscriptionStatus["status"] = settings.mode === "push" ? "creating" : "disabled"
  let error: string | undefined

  const register = (subscription: PersistedSubscription) =>
    inbox.register({
      id: subscription.subscriptionId,
      kind: "users",
      key: "users",
      clientState: Redacted.make(subscription.clientState)
    })

  const create = Effect.fnUntraced(function*() {
    status = "creating"
    const now = yield* Clock.currentTimeMillis
    const clientState = crypto.randomBytes(32).toString("base64url")
    const withdraw = yield* inbox.expect({ kind: "users", key: "users", clientState: Redacted.make(clientState) })
    const created = yield* api.create(settings.usersCredential, {
      changeType: "updated,deleted",
      notificationUrl: urls.notificationUrl,
      lifecycleNotificationUrl: urls.lifecycleNotificationUrl,
      resource: "/users",
      expirationDateTime: isoIn(now, settings.usersExpiryMinutes),
      clientState,
      includeResourceData: false
    }).pipe(Effect.result, Effect.ensuring(withdraw))
    if (created._tag === "Failure") {
      status = "error"
      error = `creating the users subscription failed: ${describeError(created.failure)}`
      yield* countFailure("users", created.failure)
      return yield* Effect.logError(error)
    }
    live = {
      subscriptionId: created.success.id,
      clientState,
      expiresAt: Date.parse(created.success.expirationDateTime) || now + minutes(settings.usersExpiryMinutes)
    }
    yield* register(live)
    status = "active"
    error = undefined
    lastRenewalAt = now
  })

  const renew = Effect.fnUntraced(function*() {
    if (settings.mode !== "push") return
    if (live === undefined) return yield* create()
    const now = yield* Clock.currentTimeMillis
    const answer = yield* api.renew(settings.usersCredential, live.subscriptionId, {
      expirationDateTime: isoIn(now, settings.usersExpiryMinutes)
    }).pipe(Effect.result)
    if (answer._tag === "Success") {
      live = { ...live, expiresAt: Date.parse(answer.success.expirationDateTime) || now }
      lastRenewalAt = now
      status = "active"
      error = undefined
      return yield* countRenewal("users")
    }
    yield* countFailure("users", answer.failure)
    if (isNotFound(answer.failure)) {
      yield* inbox.unregister(live.subscriptionId)
      live = undefined
      return yield* create()
    }
    status = "error"
    error = `renewal failed: ${describeError(answer.failure)}`
  })

  const onLifecycle = Effect.fnUntraced(function*(event: LifecycleSignal["event"]) {
    if (live === undefined) return
    if (event === "subscriptionRemoved") {
      yield* inbox.unregister(live.subscriptionId)
      live = undefined
      return yield* create()
    }
    if (event === "reauthorizationRequired") {
      yield* api.reauthorize(settings.usersCredential, live.subscriptionId).pipe(Effect.ignore)
      return yield* renew()
    }
  })

  return {
    /** Registers the adopted subscription's clientState; the first renewal then verifies it. */
    adopt: Effect.suspend(() => (live !== undefined ? register(live) : Effect.void)),
    renew: Effect.suspend(() => renew()),
    onLifecycle,
    /** Deletes the subscription at Graph (shutdown with `deleteOnShutdown`). */
    remove: Effect.suspend(() => {
      if (live === undefined) return Effect.void
      return api.remove(settings.usersCredential, live.subscriptionId).pipe(
        Effect.ignore,
        Effect.andThen(Effect.sync(() => void (live = undefined)))
      )
    }),
    persisted: (): PersistedSubscription | undefined => live,
    status: (): UsersSubscriptionStatus => ({
      status,
      ...(live !== undefined ? { subscriptionId: live.subscriptionId, expiresAt: live.expiresAt } : {}),
      ...(lastRenewalAt !== undefined ? { lastRenewalAt } : {}),
      ...(error !== undefined ? { error } : {})
    })
  }
})
