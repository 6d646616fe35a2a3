/**
 * The `pbxToTeams` section turned into settings, and the checks that span several keys (a credential that can write,
 * a refresh before the expiry). Reading a separate app's certificate files is the only IO.
 */
import { readFile } from "node:fs/promises"
import { Effect, Redacted } from "effect"
import type { ConnectorConfig } from "../../config/Config.ts"
import type { Problem } from "../../domain/Problems.ts"
import type { AppCredential } from "../../graph/client/GraphSettings.ts"
import { defaultPbxToTeamsSettings, type PbxToTeamsSettings, splitPair } from "./PbxToTeamsSettings.ts"

export const pbxToTeamsProblems = (config: ConnectorConfig): ReadonlyArray<Problem> => {
  const section = config.pbxToTeams
  if (!section.enabled) return []
  const problems: Array<Problem> = []
  if (section.refreshSeconds >= section.expirationMinutes * 60) {
    problems.push({
      path: "pbxToTeams.refreshSeconds",
      message: `must be shorter than pbxToTeams.expirationMinutes (${section.expirationMinutes} min), or the session lapses between refreshes`
    })
  }
  const writer = section.app
  if (writer === undefined && config.app === undefined) {
    problems.push({
      path: "pbxToTeams.app",
      message: "setPresence is application-only: configure app (the connector's credential) or pbxToTeams.app (a separate app registration)"
    })
  }
  if (writer !== undefined) {
    if (writer.clientSecret === undefined && writer.certificateFile === undefined) {
      problems.push({ path: "pbxToTeams.app", message: "set clientSecret (or CONNECTOR_PBXTOTEAMS_CLIENT_SECRET), or certificateFile and privateKeyFile" })
    }
    if ((writer.certificateFile === undefined) !== (writer.privateKeyFile === undefined)) {
      problems.push({ path: "pbxToTeams.app", message: "certificateFile and privateKeyFile go together" })
    }
  }
  return problems
}

const read = (path: string) => Effect.tryPromise({ try: () => readFile(path, "utf8"), catch: (cause) => cause })

/** The settings, or undefined when the direction is off. Fails with the unreadable file's cause. */
export const pbxToTeamsSettings = Effect.fn("PbxToTeams.settings")(function*(config: ConnectorConfig) {
  const section = config.pbxToTeams
  if (!section.enabled) return undefined
  const app = section.app
  const credential: AppCredential | undefined = app === undefined
    ? undefined
    : app.certificateFile !== undefined && app.privateKeyFile !== undefined
    ? { _tag: "Certificate", certificatePem: yield* read(app.certificateFile), privateKeyPem: Redacted.make(yield* read(app.privateKeyFile)) }
    : app.clientSecret !== undefined
    ? { _tag: "ClientSecret", secret: app.clientSecret }
    : undefined
  return {
    ...defaultPbxToTeamsSettings,
    source: section.source,
    ringing: section.callStates === "ringing",
    hold: section.holdCounts,
    ...splitPair(section.presence),
    expirationMinutes: section.expirationMinutes,
    refreshMillis: section.refreshSeconds * 1000,
    debounceMillis: section.debounceSeconds * 1000,
    graceMillis: section.graceSeconds * 1000,
    group: section.group,
    clearOnShutdown: section.clearOnShutdown,
    writer: app !== undefined && credential !== undefined
      ? { _tag: "Separate", clientId: app.clientId, credential }
      : { _tag: "Shared" }
  } satisfies PbxToTeamsSettings
})
