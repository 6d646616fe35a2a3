/** The real subscription manager over the real Graph stack and the fake HttpClient (fakeGraph.ts), for the timer tests. */
import { Layer } from "effect"
import type { LicenceCheck } from "../../src/graph/subscriptions/SubscriptionLicenceCheck.ts"
import { SubscriptionManager } from "../../src/graph/subscriptions/SubscriptionManager.ts"
import { defaultSubscriptionSettings, SubscriptionSettings } from "../../src/graph/subscriptions/SubscriptionSettings.ts"
import type { TeamsUser } from "../../src/graph/users/TeamsUsers.ts"
import { type FakeGraph, graphStack, inertWebhook } from "./fakeGraph.ts"

/** The schedules below are exact; the lookups between renewals (every `verifySeconds`) are tested on their own. */
export const subscriptionSettings = (maxUsersPerShard = 650, verifySeconds = 24 * 3600) =>
  SubscriptionSettings.layer(defaultSubscriptionSettings({
    publicBaseUrl: "https://connector.example",
    appId: "c",
    includeResourceData: false,
    maxUsersPerShard,
    verifySeconds
  }))

/** The real manager over the real Graph stack and the fake HttpClient. */
export const buildManager = (
  fake: FakeGraph,
  accounts: ReadonlyArray<string>,
  dataDir: string,
  licence: Layer.Layer<LicenceCheck>,
  maxUsersPerShard?: number,
  verifySeconds?: number
) =>
  Layer.build(
    SubscriptionManager.layer.pipe(
      Layer.provideMerge(graphStack(fake, accounts, dataDir)),
      Layer.provide(inertWebhook),
      Layer.provide(licence),
      Layer.provide(subscriptionSettings(maxUsersPerShard, verifySeconds))
    )
  )

export const teamsUser = (n: number): TeamsUser => ({
  id: `0000000${n}-aaaa-4bbb-8ccc-00000000000${n}`,
  displayName: `User ${n}`,
  userPrincipalName: `user${n}@contoso.com`,
  mail: `user${n}@contoso.com`,
  otherMails: []
})
