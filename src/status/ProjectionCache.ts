/**
 * The lights and details of one projection, kept from the last one while their inputs are the same: every tenant's
 * board is projected twice a second (100 projections a second over 50 tenants in one process), and each fresh set of
 * lights lives until the next — long enough for the young generation to promote all of it. Inputs the parts replace
 * when they change (the PBX states, the subscriptions, the plan) are compared by identity; the two read afresh on each
 * projection (credential statuses, the recent errors) by their items.
 */
import type { CredentialStatus } from "../graph/auth/TokenCache.ts"
import type { ReadHealth } from "../graph/presence/ReadRetry.ts"
import type { CertificateProblem } from "../graph/notifications/crypto/CertificateStore.ts"
import type { SubscriptionsState } from "../graph/subscriptions/SubscriptionManager.ts"
import type { PbxState } from "../pbx/socket/PbxConnections.ts"
import type { Plan } from "../connector/Plan.ts"
import {
  authenticationLight,
  certificateStatus,
  credentialLights,
  pbxLight,
  pbxLights,
  presenceSubscriptionLight,
  shardLights,
  userSubscriptionLight
} from "./Lights.ts"
import type { Light, RecentError, StatusSnapshot } from "./StatusBoard.ts"

/** Errors older than this leave the page. */
const errorsShownMillis = 24 * 3600_000

export interface ProjectionInputs {
  readonly mode: "push" | "poll"
  readonly refreshMinutes: number
  readonly masterPbx: string
  readonly keyStoreProblem: CertificateProblem | undefined
  readonly pbxStates: ReadonlyMap<string, PbxState>
  readonly directoryLoaded: boolean
  readonly credentials: ReadonlyArray<CredentialStatus>
  readonly subscriptions: SubscriptionsState | undefined
  readonly plan: Plan
  readonly recent: ReadonlyArray<RecentError>
  readonly reads: ReadHealth
  readonly now: number
}

export type ProjectedParts = Pick<StatusSnapshot, "lights" | "pbxs" | "credentials" | "shards" | "certificate" | "errors">
type Parts = ProjectedParts
type Lights = ProjectedParts["lights"]

const readsOk: ReadHealth = { _tag: "Ok" }

/** `f` of the last arguments again while every argument is the same value (`Object.is`) as last time. */
const memo = <I extends ReadonlyArray<unknown>, O>(f: (...inputs: I) => O) => {
  let last: { readonly inputs: I; readonly out: O } | undefined
  return (...inputs: I): O => {
    if (last !== undefined && inputs.every((input, i) => Object.is(input, last!.inputs[i]))) return last.out
    const out = f(...inputs)
    last = { inputs, out }
    return out
  }
}

const sameCredential = (a: CredentialStatus, b: CredentialStatus) =>
  a.credential === b.credential && a.label === b.label && a.ok === b.ok && a.expiresAt === b.expiresAt &&
  a.error?.code === b.error?.code && a.error?.message === b.error?.message && a.error?.fix === b.error?.fix

/** The previous array while `next` holds the same items (by `same`), else `next`. */
const stable = <A>(same: (a: A, b: A) => boolean) => {
  let last: ReadonlyArray<A> | undefined
  return (next: ReadonlyArray<A>): ReadonlyArray<A> => {
    if (last !== undefined && last.length === next.length && next.every((item, i) => same(item, last![i]!))) return last
    last = next
    return next
  }
}

/** A projector of one board's lights and details; a part is built again only when one of its inputs changed. */
export const makeProjectionCache = () => {
  const credentialsOf = stable(sameCredential)
  const shownErrors = stable<RecentError>((a, b) => a === b)
  const master = memo(pbxLight)
  const authentication = memo(authenticationLight)
  const presence = memo(presenceSubscriptionLight)
  const users = memo(userSubscriptionLight)
  const lights = memo((masterPbx: Light, authentication: Light, presenceSubscription: Light, userSubscription: Light): Lights => ({
    masterPbx,
    authentication,
    presenceSubscription,
    userSubscription
  }))
  const pbxs = memo(pbxLights)
  const credentials = memo(credentialLights)
  const shards = memo(shardLights)
  const certificate = memo(certificateStatus)
  const parts = memo((
    lights: Lights,
    pbxs: Parts["pbxs"],
    credentials: Parts["credentials"],
    shards: Parts["shards"],
    certificate: Parts["certificate"],
    errors: Parts["errors"]
  ): ProjectedParts => ({
    lights,
    pbxs,
    credentials,
    shards,
    certificate,
    errors
  }))
  return (inputs: ProjectionInputs): ProjectedParts => {
    const { now, reads, subscriptions } = inputs
    const statuses = credentialsOf(inputs.credentials)
    // The presence light reads the clock only while presence reads fail (amber, then red after five minutes).
    const failing = reads._tag === "Ok" ? undefined : reads
    return parts(
      lights(
        master(inputs.pbxStates.get(inputs.masterPbx), inputs.masterPbx, inputs.directoryLoaded),
        authentication(statuses),
        presence(inputs.mode, subscriptions, inputs.plan, inputs.keyStoreProblem, failing ?? readsOk, failing === undefined ? 0 : now),
        users(inputs.mode, subscriptions, inputs.refreshMinutes)
      ),
      pbxs(inputs.pbxStates, inputs.directoryLoaded),
      credentials(statuses),
      shards(subscriptions),
      certificate(subscriptions),
      shownErrors(inputs.recent.filter((e) => now - e.at < errorsShownMillis))
    )
  }
}
