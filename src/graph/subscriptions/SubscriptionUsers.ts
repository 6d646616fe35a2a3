/**
 * The users subscription (push mode only): `/users` changes and deletions, created with the users credential, renewed
 * every `usersRenewMinutes`, recreated when Graph removes it or a renewal answers 404. Part of the SubscriptionManager,
 * which calls it under its lock.
 */
import { Clock, Effect, Redacted } from "effect"
import * as crypto from "node:crypto"
import { type LifecycleSignal, NotificationsInbox } from "../notifications/NotificationsInbox.ts"
import { describeError, isNotFound, SubscriptionApi } from "./SubscriptionApi.ts"
import { notificationUrls, SubscriptionSettings, type SubscriptionSettingsOptions } from "./SubscriptionSettings.ts"
import { countFailure, countRenewal, isoIn, minutes, type UsersSubscriptionStatus } from "./SubscriptionState.ts"
import type { StoredSubscription } from "../../state/Records.ts"

/** The subscription, its services, and what the status page shows of it. */
interface Users {
  readonly settings: SubscriptionSettingsOptions
  readonly api: SubscriptionApi["Service"]
  readonly inbox: NotificationsInbox["Service"]
  live: StoredSubscription | undefined
  lastRenewalAt: number | undefined
  status: UsersSubscriptionStatus["status"]
  error: string | undefined
}

const register = (users: Users, subscription: StoredSubscription) =>
  users.inbox.register({ id: subscription.subscriptionId, kind: "users", key: "users", clientState: subscription.clientState })

const create = Effect.fn("SubscriptionUsers.create")(function*(users: Users) {
  const { settings } = users
  users.status = "creating"
  const now = yield* Clock.currentTimeMillis
  const clientState = crypto.randomBytes(32).toString("base64url")
  const withdraw = yield* users.inbox.expect({ kind: "users", key: "users", clientState: Redacted.make(clientState) })
  const urls = notificationUrls(settings)
  const created = yield* users.api.create(settings.usersCredential, {
    changeType: "updated,deleted",
    notificationUrl: urls.notificationUrl,
    lifecycleNotificationUrl: urls.lifecycleNotificationUrl,
    resource: "/users",
    expirationDateTime: isoIn(now, settings.usersExpiryMinutes),
    clientState,
    includeResourceData: false
  }).pipe(Effect.result, Effect.ensuring(withdraw))
  if (created._tag === "Failure") {
    users.status = "error"
    users.error = `creating the users subscription failed: ${describeError(created.failure)}`
    yield* countFailure("users", created.failure)
    return yield* Effect.logError(users.error)
  }
  users.live = {
    subscriptionId: created.success.id,
    clientState: Redacted.make(clientState),
    expiresAt: Date.parse(created.success.expirationDateTime) || now + minutes(settings.usersExpiryMinutes)
  }
  yield* register(users, users.live)
  markRenewed(users, now)
})

const markRenewed = (users: Users, now: number) => {
  users.status = "active"
  users.error = undefined
  users.lastRenewalAt = now
}

/** Forgets the subscription Graph no longer has and creates a new one. */
const replace = Effect.fnUntraced(function*(users: Users, live: StoredSubscription) {
  yield* users.inbox.unregister(live.subscriptionId)
  users.live = undefined
  yield* create(users)
})

const renew = Effect.fn("SubscriptionUsers.renew")(function*(users: Users): Effect.fn.Return<void> {
  const { settings, live } = users
  if (settings.mode !== "push") return
  if (live === undefined) return yield* create(users)
  const now = yield* Clock.currentTimeMillis
  const answer = yield* users.api.renew(settings.usersCredential, live.subscriptionId, {
    expirationDateTime: isoIn(now, settings.usersExpiryMinutes)
  }).pipe(Effect.result)
  if (answer._tag === "Success") {
    users.live = { ...live, expiresAt: Date.parse(answer.success.expirationDateTime) || now }
    markRenewed(users, now)
    return yield* countRenewal("users")
  }
  yield* countFailure("users", answer.failure)
  if (isNotFound(answer.failure)) return yield* replace(users, live)
  users.status = "error"
  users.error = `renewal failed: ${describeError(answer.failure)}`
})

const onLifecycle = Effect.fn("SubscriptionUsers.onLifecycle")(function*(users: Users, event: LifecycleSignal["event"]) {
  const { live } = users
  if (live === undefined) return
  if (event === "subscriptionRemoved") return yield* replace(users, live)
  if (event === "reauthorizationRequired") {
    yield* users.api.reauthorize(users.settings.usersCredential, live.subscriptionId).pipe(Effect.ignore)
    return yield* renew(users)
  }
})

/** Deletes the subscription at Graph (shutdown with `deleteOnShutdown`). */
const remove = Effect.fn("SubscriptionUsers.remove")(function*(users: Users) {
  if (users.live === undefined) return
  const id = users.live.subscriptionId
  yield* users.api.remove(users.settings.usersCredential, id).pipe(
    Effect.catch((error) => (isNotFound(error) ? Effect.void : Effect.logWarning(`could not delete subscription ${id}: ${describeError(error)}`)))
  )
  users.live = undefined
})

const statusOf = (users: Users): UsersSubscriptionStatus => ({
  status: users.status,
  ...(users.live !== undefined ? { subscriptionId: users.live.subscriptionId, expiresAt: users.live.expiresAt } : {}),
  ...(users.lastRenewalAt !== undefined ? { lastRenewalAt: users.lastRenewalAt } : {}),
  ...(users.error !== undefined ? { error: users.error } : {})
})

export const makeUsersSubscription = Effect.fnUntraced(function*(adopted: StoredSubscription | undefined) {
  const settings = yield* SubscriptionSettings
  const users: Users = {
    settings,
    api: yield* SubscriptionApi,
    inbox: yield* NotificationsInbox,
    live: adopted,
    lastRenewalAt: undefined,
    status: settings.mode === "push" ? "creating" : "disabled",
    error: undefined
  }
  return {
    /** Registers the adopted subscription's clientState; the first renewal then verifies it. */
    adopt: Effect.suspend(() => (users.live !== undefined ? register(users, users.live) : Effect.void)),
    renew: renew(users),
    /**
     * Creates the subscription again when creating it failed (Graph's validation request timed out on a busy machine,
     * Graph unavailable): looked at every `verifySeconds`, not left red until the next renewal. True when it tried.
     */
    createIfFailed: Effect.suspend(() => (users.live === undefined && users.status === "error" ? Effect.as(create(users), true) : Effect.succeed(false))),
    onLifecycle: (event: LifecycleSignal["event"]) => onLifecycle(users, event),
    remove: remove(users),
    persisted: (): StoredSubscription | undefined => users.live,
    status: () => statusOf(users)
  }
})
