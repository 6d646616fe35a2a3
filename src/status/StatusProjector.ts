/**
 * Projects the parts' states onto the status board twice a second: the four lights with their reasons and fixes,
 * per-PBX, per-credential and per-shard details, counts and the user table. Every change of a light's colour is
 * logged once, with the reason, so the log explains every red light. The user table is rebuilt incrementally, so a
 * projection costs little on the event loop even with 10,000 users.
 */
import { Clock, Effect, Layer, Option, Ref, Schedule, SubscriptionRef } from "effect"
import { type CertificateProblem, CertificateStore } from "../graph/notifications/crypto/CertificateStore.ts"
import { type CredentialStatus, TokenService } from "../graph/auth/TokenService.ts"
import { PresenceSource } from "../graph/presence/PresenceSource.ts"
import type { ReadHealth } from "../graph/presence/ReadRetry.ts"
import { SubscriptionManager, type SubscriptionsState } from "../graph/subscriptions/SubscriptionManager.ts"
import { PbxConnections, type PbxState } from "../pbx/socket/PbxConnections.ts"
import { checkmarkOf } from "../pbx/socket/PbxMessages.ts"
import { PbxSettings } from "../pbx/PbxSettings.ts"
import { PresenceWriter } from "../pbx/PresenceWriter.ts"
import { PbxDirectory } from "../pbx/directory/UserDirectory.ts"
import { FlowConfig, FlowState } from "../connector/Flow.ts"
import type { Plan } from "../connector/Plan.ts"
import { RecentErrors } from "./RecentErrors.ts"
import {
  type CredentialLight,
  type LicensingStatus,
  type Light,
  type PbxLight,
  type ShardLight,
  StatusBoard,
  type StatusSnapshot
} from "./StatusBoard.ts"
import { makeUserRows, type RowChanges } from "./UserRows.ts"
import { explain } from "./Explain.ts"
import { lightLine } from "./LightText.ts"

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

/** The licensing block: the mode from the settings until the first plan, then the plan's pass. */
export const licensingStatus = (mode: LicensingStatus["mode"], plan: Plan): LicensingStatus => ({
  mode,
  ...(plan.licensing !== undefined
    ? {
      name: plan.licensing.name,
      serviceLicences: plan.licensing.serviceLicences,
      unlicensedFlag: plan.licensing.unlicensedFlag,
      cap: plan.licensing.cap,
      problem: plan.licensing.problem
    }
    : {}),
  licensed: plan.synced.length,
  unlicensed: plan.unlicensed.length,
  unknown: plan.unknown.length
})

/** The plan's lists for the status page, computed again only when the plan is another one. */
const planLists = (plan: Plan) => ({
  unlicensed: [...plan.unlicensed, ...plan.unknown].map((u) => ({ name: `${u.teams.displayName} (${u.pbx.h323})`, reason: u.reason })),
  unmatched: [
    ...plan.unmatchedTeams.map((t) => ({ side: "teams" as const, name: `${t.displayName} <${t.userPrincipalName}>` })),
    ...plan.unmatchedPbx.map((p) => ({ side: "pbx" as const, name: `${p.cn} (${p.h323})` }))
  ],
  ambiguous: plan.ambiguous.map((a) => ({ key: a.key, reason: a.reason }))
})

export const StatusProjectorLayer = Layer.effectDiscard(Effect.gen(function*() {
  const board = yield* StatusBoard
  const flow = yield* FlowConfig
  const state = yield* FlowState
  const connections = yield* PbxConnections
  const pbxSettings = yield* PbxSettings
  const directory = yield* PbxDirectory
  const tokens = yield* TokenService
  const writer = yield* PresenceWriter
  const errors = yield* RecentErrors
  const manager = yield* Effect.serviceOption(SubscriptionManager)
  const source = yield* PresenceSource
  const keyStore = yield* Effect.serviceOption(CertificateStore)
  const keyStoreProblem = Option.isSome(keyStore) ? keyStore.value.problem : undefined
  const directoryLoaded = yield* Ref.make(false)
  yield* directory.ready.pipe(Effect.andThen(Ref.set(directoryLoaded, true)), Effect.forkScoped)

  const userRows = makeUserRows()
  let lists: { readonly plan: Plan; readonly value: ReturnType<typeof planLists> } | undefined
  const project = Effect.gen(function*() {
    const pbxStates = yield* SubscriptionRef.get(connections.states)
    const loaded = yield* Ref.get(directoryLoaded)
    const credentials = yield* tokens.status
    const subscriptions = Option.isSome(manager) ? yield* SubscriptionRef.get(manager.value.state) : undefined
    const plan = yield* SubscriptionRef.get(state.plan)
    const written = yield* writer.current
    const recent = yield* errors.list
    const reads = yield* SubscriptionRef.get(source.readHealth)
    const now = yield* Clock.currentTimeMillis

    const pbxs: Array<PbxLight> = [...pbxStates.values()]
      .sort((a, b) => Number(b.isMaster) - Number(a.isMaster) || a.pbx.localeCompare(b.pbx))
      .map((s) => ({
        ...pbxLight(s, s.pbx, loaded),
        pbx: s.pbx,
        isMaster: s.isMaster,
        apis: s.apis,
        missingApis: s.missingApis,
        ...(s.lics !== undefined ? { lics: s.lics } : {}),
        ...(s.connectedAt !== undefined ? { connectedAt: s.connectedAt } : {})
      }))
    const credentialLights: Array<CredentialLight> = credentials.map((c) => ({
      ...(c.error !== undefined ? redExplained("", c.error.message, c.error.fix) : c.ok ? green("signed in") : red("not signed in yet")),
      label: c.label,
      kind: c.credential._tag === "App" ? "app" : "account",
      ...(c.expiresAt !== undefined ? { expiresAt: c.expiresAt } : {})
    }))
    const shards: Array<ShardLight> = (subscriptions?.shards ?? []).map((s) => ({
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

    if (lists?.plan !== plan) lists = { plan, value: planLists(plan) }
    // The users whose row or confirmed write changed since the last projection; the sets refill meanwhile.
    const changes: RowChanges = { teamsKeys: new Set(state.rowsChanged), guids: new Set(writer.confirmedChanges) }
    state.rowsChanged.clear()
    writer.confirmedChanges.clear()
    const users = yield* userRows(plan, state.rows, written, changes)
    const listed = lists.value
    yield* board.update((previous): StatusSnapshot => ({
      ...previous,
      lights: {
        masterPbx: pbxLight(pbxStates.get(pbxSettings.masterPbx), pbxSettings.masterPbx, loaded),
        authentication: authenticationLight(credentials),
        presenceSubscription: presenceSubscriptionLight(flow.mode, subscriptions, plan, keyStoreProblem, reads, now),
        userSubscription: userSubscriptionLight(flow.mode, subscriptions, flow.usersRefreshMinutes)
      },
      pbxs,
      credentials: credentialLights,
      shards,
      certificate: subscriptions?.certificate === undefined ? undefined : {
        id: subscriptions.certificate.currentId,
        notAfter: subscriptions.certificate.notAfter,
        ...(subscriptions.certificate.lastRotationAt !== undefined ? { lastRotationAt: subscriptions.certificate.lastRotationAt } : {}),
        previousKeys: subscriptions.certificate.previous.length,
        ...(subscriptions.certificate.error !== undefined ? { error: subscriptions.certificate.error } : {})
      },
      counts: {
        teamsUsers: plan.teamsUserCount,
        technicalAccounts: plan.technicalAccounts.length,
        pbxUsers: plan.pbxUserCount,
        matched: plan.matchedCount,
        licensed: plan.synced.length,
        unlicensed: plan.unlicensed.length,
        unmatched: plan.unmatchedTeams.length + plan.unmatchedPbx.length,
        ambiguous: plan.ambiguous.length
      },
      licensing: licensingStatus(pbxSettings.licensing, plan),
      users,
      ...listed,
      errors: recent.filter((e) => now - e.at < 24 * 3600_000),
      now
    }))
  })

  // One log line per colour change of a light, with the reason. While starting up, red is expected and logged as
  // information; after the grace period (or once a light was green) a red light is a warning with its fix.
  const lastColours = new Map<string, string>()
  const startedAt = yield* Clock.currentTimeMillis
  const graceMillis = 60_000
  const logChanges = Effect.gen(function*() {
    const snapshot = yield* board.get
    const now = yield* Clock.currentTimeMillis
    for (const [name, light] of Object.entries(snapshot.lights)) {
      const previous = lastColours.get(name)
      if (previous === light.state) continue
      lastColours.set(name, light.state)
      const line = `light ${name} is ${light.state}: ${lightLine(light)}`
      const expected = light.state === "green" || (previous === undefined && now - startedAt < graceMillis)
      const log = expected ? Effect.logInfo(line) : Effect.logWarning(line)
      yield* log.pipe(Effect.annotateLogs({ light: name, state: light.state, ...(light.fix !== undefined ? { fix: light.fix } : {}) }))
    }
  })

  yield* Effect.gen(function*() {
    while (true) {
      yield* project
      yield* logChanges
      yield* Effect.sleep("500 millis")
    }
  }).pipe(
    Effect.tapCause((cause) => Effect.logError("status projection failed; restarting", cause)),
    Effect.retry(Schedule.spaced("1 second")),
    Effect.forkScoped
  )
}))

