/**
 * The status page's lights as pure functions of the parts' states: each light has a reason, and a red one says what to
 * do about it. Also the per-PBX, per-credential and per-shard details and the certificate shown beside them.
 */
import type { CredentialStatus } from "../graph/auth/TokenService.ts"
import type { ReadHealth } from "../graph/presence/ReadRetry.ts"
import type { SubscriptionsState } from "../graph/subscriptions/SubscriptionManager.ts"
import type { CertificateProblem } from "../graph/notifications/crypto/CertificateStore.ts"
import type { PbxState } from "../pbx/socket/PbxConnections.ts"
import { checkmarkOf } from "../pbx/socket/PbxMessages.ts"
import type { Plan } from "../connector/Plan.ts"
import { explain } from "./Explain.ts"
import type { CredentialLight, Light, PbxLight, ShardLight, StatusSnapshot } from "./StatusBoard.ts"

const green = (reason: string, times: Pick<Light, "since" | "until"> = {}): Light => ({ state: "green", reason, ...times })
const red = (reason: string, fix?: string, detail?: string): Light => ({
  state: "red",
  reason,
  ...(fix !== undefined ? { fix } : {}),
  ...(detail !== undefined ? { detail } : {})
})
/** A red light whose cause is technical: the words for it (Explain.ts), the cause as the detail. */
const redExplained = (prefix: string, cause: string, fix?: string): Light => {
  const { detail, text } = explain(cause)
  return red(prefix + text, fix, detail)
}

export const pbxLight = (state: PbxState | undefined, name: string, directoryLoaded: boolean): Light => {
  if (state !== undefined && !state.connected && state.lastError !== undefined) {
    return redExplained(`PBX ${name} is not connected: `, state.lastError.message.replace(/^disconnected: /, ""), state.lastError.fix)
  }
  if (state === undefined || !state.connected) {
    return red(
      `PBX ${name} is not connected`,
      "Check the App object on that PBX: its URL must point to this connector's /pbx websocket path, with the Websocket checkmark set"
    )
  }
  if (!state.loggedIn) {
    return state.lastError === undefined ? red(`PBX ${name} has not logged in`) : redExplained("", state.lastError.message, state.lastError.fix)
  }
  if (state.missingApis.length > 0) {
    return red(
      `the App object on ${name} does not enable ${state.missingApis.join(" and ")}`,
      `Set the ${state.missingApis.map(checkmarkOf).join(" and ")} checkmark${state.missingApis.length > 1 ? "s" : ""} on the App object of ${name}`
    )
  }
  if (state.isMaster && !directoryLoaded) return red(`loading the user table of ${name}`)
  return green(`connected${state.version !== undefined ? ` (${state.version})` : ""}`, { since: state.connectedAt })
}

export const authenticationLight = (credentials: ReadonlyArray<CredentialStatus>): Light => {
  if (credentials.length === 0) return red("no credential configured", "Configure app.clientSecret or accounts (docs/azure-setup.md)")
  const failing = credentials.filter((c) => c.error !== undefined)
  if (failing.length > 0) {
    const first = failing[0]!
    const { detail, text } = explain(first.error!.message)
    return red(`${first.label}: ${text}${failing.length > 1 ? ` (and ${failing.length - 1} more)` : ""}`, first.error!.fix, detail)
  }
  const waiting = credentials.filter((c) => !c.ok)
  if (waiting.length === credentials.length) return red("signing in…")
  return green(`${credentials.length - waiting.length} of ${credentials.length} credentials signed in`)
}

/** Reads failing for longer than this turn the presence light from amber to red. */
export const readsRedAfterMillis = 5 * 60_000

/** Presence reads that keep failing (ReadRetry.ts): amber while they are retried, red after five minutes. */
export const readsLight = (reads: ReadHealth, now: number): Light | undefined => {
  if (reads._tag === "Ok") return undefined
  const cause = explain(reads.error)
  const reason = `reading the presence of ${reads.users} users keeps failing: ${cause.text}; ` +
    `retrying in ${Math.ceil(reads.retryInMillis / 1000)} s`
  const fix = "Graph throttles or is unavailable (see connector_graph_requests_total); these users' presences are stale until a read succeeds"
  return {
    state: now - reads.since >= readsRedAfterMillis ? "red" : "amber",
    reason,
    fix,
    since: reads.since,
    ...(cause.detail !== undefined ? { detail: cause.detail } : {})
  }
}

export const presenceSubscriptionLight = (
  mode: "push" | "poll",
  state: SubscriptionsState | undefined,
  plan: Plan,
  keyStoreProblem?: CertificateProblem,
  reads: ReadHealth = { _tag: "Ok" },
  now = 0
): Light => {
  const failingReads = readsLight(reads, now)
  if (mode === "poll") return failingReads ?? green("poll-only mode: presences are polled, no subscription needed")
  if (keyStoreProblem !== undefined) return red(keyStoreProblem.message, keyStoreProblem.fix)
  if (state === undefined) return red("the subscription manager is not running")
  if (plan.synced.length === 0) {
    const problem = plan.licensing?.problem
    if (problem !== undefined) return red(`no users to subscribe: ${problem.message}`, problem.fix)
    return red("no users to subscribe yet: no Teams user is matched to a licensed PBX user", "See the counts and the list of users not synchronised")
  }
  const needAccount = state.shards.filter((s) => s.status === "needsAccount")
  if (needAccount.length > 0) {
    const users = needAccount.reduce((n, s) => n + s.userCount, 0)
    return red(
      `${users} users need another technical account (650 users per account)`,
      "Add a delegated technical account under accounts (and run login for it if it uses the device code flow)"
    )
  }
  const failed = state.shards.filter((s) => s.status === "error")
  if (failed.length > 0) return redExplained(`${failed.length} presence subscription(s) failing: `, failed[0]!.error ?? "error")
  const pending = state.shards.filter((s) => s.status !== "active")
  if (state.shards.length === 0 || pending.length > 0) return red("creating presence subscriptions…")
  if (failingReads !== undefined) return failingReads
  const next = Math.min(...state.shards.map((s) => s.expiresAt ?? Infinity))
  return green(`${state.shards.length} subscription(s) for ${plan.synced.length} users`, Number.isFinite(next) ? { until: next } : {})
}

export const userSubscriptionLight = (mode: "push" | "poll", state: SubscriptionsState | undefined, refreshMinutes: number): Light => {
  if (mode === "poll") return green(`poll-only mode: Teams users are re-read every ${refreshMinutes} min`)
  if (state === undefined) return red("the subscription manager is not running")
  switch (state.users.status) {
    case "active":
      return green("active", { until: state.users.expiresAt })
    case "creating":
      return red("creating the users subscription…")
    case "disabled":
      return redExplained("", state.users.error ?? "the users subscription is disabled", "It needs the application credential or a technical account")
    case "error":
      return redExplained("", state.users.error ?? "the users subscription failed")
  }
}

/** Each PBX's light with its details, the master first. */
export const pbxLights = (states: ReadonlyMap<string, PbxState>, directoryLoaded: boolean): Array<PbxLight> =>
  [...states.values()]
    .sort((a, b) => Number(b.isMaster) - Number(a.isMaster) || a.pbx.localeCompare(b.pbx))
    .map((s) => ({
      ...pbxLight(s, s.pbx, directoryLoaded),
      pbx: s.pbx,
      isMaster: s.isMaster,
      apis: s.apis,
      missingApis: s.missingApis,
      ...(s.lics !== undefined ? { lics: s.lics } : {}),
      ...(s.connectedAt !== undefined ? { connectedAt: s.connectedAt } : {})
    }))

export const credentialLights = (credentials: ReadonlyArray<CredentialStatus>): Array<CredentialLight> =>
  credentials.map((c) => ({
    ...(c.error !== undefined ? redExplained("", c.error.message, c.error.fix) : c.ok ? green("signed in") : red("not signed in yet")),
    label: c.label,
    kind: c.credential._tag === "App" ? "app" : "account",
    ...(c.expiresAt !== undefined ? { expiresAt: c.expiresAt } : {})
  }))

export const shardLights = (subscriptions: SubscriptionsState | undefined): Array<ShardLight> =>
  (subscriptions?.shards ?? []).map((s) => ({
    ...(s.status === "active" ? green("active") : s.status === "needsAccount"
      ? red("needs another technical account", "Add a delegated technical account under accounts")
      : redExplained("", s.error ?? s.status)),
    key: s.key,
    account: s.account ?? "(no account)",
    userCount: s.userCount,
    status: s.status,
    ...(s.expiresAt !== undefined ? { expiresAt: s.expiresAt } : {}),
    ...(s.lastRenewalAt !== undefined ? { lastRenewalAt: s.lastRenewalAt } : {})
  }))

/** The rich-notification certificate (push mode) as the page shows it. */
export const certificateStatus = (subscriptions: SubscriptionsState | undefined): StatusSnapshot["certificate"] => {
  const certificate = subscriptions?.certificate
  if (certificate === undefined) return undefined
  return {
    id: certificate.currentId,
    notAfter: certificate.notAfter,
    ...(certificate.lastRotationAt !== undefined ? { lastRotationAt: certificate.lastRotationAt } : {}),
    previousKeys: certificate.previous.length,
    ...(certificate.error !== undefined ? { error: certificate.error } : {})
  }
}
