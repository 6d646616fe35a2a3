/**
 * Options of the presence source: push (Graph subscriptions + webhook) or poll-only, the intervals of renewal,
 * reconciliation and polling, the rich-notification certificates. Plain values; the integrator fills them from config.
 */
import { Context, Layer } from "effect"
import { AppCredentialRef, type CredentialRef } from "../client/GraphSettings.ts"

export interface SubscriptionSettingsOptions {
  readonly mode: "push" | "poll"
  /** The public HTTPS base URL Graph POSTs to, e.g. `https://connector.example.com`. */
  readonly publicBaseUrl: string
  readonly notificationPath: string
  readonly lifecyclePath: string
  readonly includeResourceData: boolean
  readonly presenceExpiryMinutes: number
  readonly presenceRenewMinutes: number
  readonly usersExpiryMinutes: number
  readonly usersRenewMinutes: number
  readonly reconcileMinutes: number
  readonly pollSeconds: number
  readonly maxUsersPerShard: number
  readonly deleteOnShutdown: boolean
  readonly jwksUrl: string
  /** The app id (`aud` of validation tokens). */
  readonly appId: string
  readonly usersCredential: CredentialRef
  readonly pollCredential: CredentialRef
  readonly maxBodyBytes: number
  /** Decryption worker threads; 0 = one per core. */
  readonly decryptWorkers: number
  /** Nice steps below the main thread for the decrypt workers (Linux; DecryptWorkers.ts). */
  readonly decryptWorkerNice: number
  /** Capacity of the queue between the webhook and the processor (items). */
  readonly queueCapacity: number
  /**
   * The longest a rich notification may expect to wait for decryption: above it, its user's presence is read with
   * getPresencesByUserId instead (src/graph/notifications/FloodGate.ts). 0 decrypts everything.
   */
  readonly floodLatencyBudgetMillis: number
  /** Validity of a newly generated rich-notification certificate. */
  readonly certificateLifetimeDays: number
  /** The certificate is rotated when it expires within this many days. */
  readonly certificateRenewBeforeDays: number
  /** How often the certificate's expiry is checked (also once at start). */
  readonly certificateCheckMinutes: number
  /**
   * After a rotation an old key is kept until no subscription names it and this long has passed: Graph retries
   * failed deliveries for up to 4 h, and those items stay sealed with the old certificate.
   */
  readonly certificateGraceMinutes: number
  /**
   * A presence read that failed (after the Graph client's own retries) is tried again for the same users after this
   * delay, doubling up to `readRetryMaxMillis`, and never sooner than Graph's Retry-After.
   */
  readonly readRetryFirstMillis: number
  readonly readRetryMaxMillis: number
  /**
   * Between renewals each presence subscription is looked up this often (GET /subscriptions/{id}), so that one Graph
   * deleted or let expire is noticed and recreated within this time, not at the next renewal.
   */
  readonly verifySeconds: number
}

export const defaultSubscriptionSettings = (
  required: Pick<SubscriptionSettingsOptions, "publicBaseUrl" | "appId"> & Partial<SubscriptionSettingsOptions>
): SubscriptionSettingsOptions => ({
  mode: "push",
  notificationPath: "/graph/notifications",
  lifecyclePath: "/graph/lifecycle",
  includeResourceData: true,
  presenceExpiryMinutes: 58,
  presenceRenewMinutes: 10,
  usersExpiryMinutes: 4230,
  usersRenewMinutes: 60,
  reconcileMinutes: 5,
  pollSeconds: 5,
  maxUsersPerShard: 650,
  deleteOnShutdown: false,
  jwksUrl: "https://login.microsoftonline.com/common/discovery/v2.0/keys",
  usersCredential: AppCredentialRef,
  pollCredential: AppCredentialRef,
  maxBodyBytes: 4 * 1024 * 1024,
  decryptWorkers: 0,
  decryptWorkerNice: 0,
  queueCapacity: 50_000,
  floodLatencyBudgetMillis: 200,
  certificateLifetimeDays: 730,
  certificateRenewBeforeDays: 30,
  certificateCheckMinutes: 24 * 60,
  certificateGraceMinutes: 4 * 60,
  readRetryFirstMillis: 2_000,
  readRetryMaxMillis: 60_000,
  verifySeconds: 30,
  ...required
})

export class SubscriptionSettings extends Context.Service<SubscriptionSettings, SubscriptionSettingsOptions>()(
  "teams-presence-connector/graph/subscriptions/SubscriptionSettings"
) {
  static readonly layer = (options: SubscriptionSettingsOptions) => Layer.succeed(SubscriptionSettings, options)
}

/** The absolute notification and lifecycle URLs subscriptions name. */
export const notificationUrls = (settings: SubscriptionSettingsOptions) => {
  const base = settings.publicBaseUrl.replace(/\/+$/, "")
  return { notificationUrl: base + settings.notificationPath, lifecycleNotificationUrl: base + settings.lifecyclePath }
}
