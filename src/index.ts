/**
 * The public API for embedding the connector in an Effect application (`teams-presence-connector`): the whole
 * connector as one Layer built from a typed configuration value, its status board, the presence mapping and domain
 * types. No simulator is loaded from here: they are in `teams-presence-connector/testing` (src/testing.ts).
 * docs/embedding.md shows a complete example. Re-exports only.
 */

// The connector as a Layer, and its settings.
export { ConnectorLayer, type ConnectorOptions, serverUrl, version } from "./connector/Connector.ts"
export { type ConnectorSettings, type FlowSettings, settingsFromConfig } from "./config/Settings.ts"

// Configuration: the one schema, decoding (all problems at once) and loading a file with the environment applied.
export {
  AccountConfig,
  AppCredentialConfig,
  ConnectorConfig,
  type ConnectorConfigInput,
  GraphEndpointsConfig,
  HttpConfig,
  LogConfig,
  MappingSection,
  MatchingConfig,
  NotificationsConfig,
  PbxConfig,
  ShutdownConfig,
  TimersConfig
} from "./config/Config.ts"
export {
  accountPasswordVariable,
  applyEnvironment,
  ConfigError,
  type ConfigProblem,
  decodeConfig,
  describeConfig,
  environmentVariables,
  loadConfigFile,
  parseConfigText
} from "./config/ConfigFile.ts"
export { type LevelName, type LogFormat, loggingLayer, scrubSecrets } from "./observability/Logging.ts"
export { DataDirError, prepareDataDir } from "./config/DataDir.ts"

// The status: what the status page, /api/status and /readyz show.
export {
  allGreen,
  type Counts,
  type CredentialLight,
  type Light,
  type LightState,
  noneRed,
  type PbxLight,
  type RecentError,
  type ShardLight,
  StatusBoard,
  type StatusSnapshot,
  type UserRow
} from "./status/StatusBoard.ts"

// The presence mapping and the domain types.
export {
  buildMappingConfig,
  decidingField,
  defaultMappingConfig,
  defaultMappingTable,
  type MappingConfig,
  type MappingTarget,
  mapPresence,
  mapPresenceDetailed,
  PbxCommandFromGraphPresence,
  specificity
} from "./domain/PresenceMapping.ts"
export {
  Activities,
  Activity,
  Availabilities,
  Availability,
  decodeGraphPresence,
  GraphPresence,
  type GraphPresenceEncoded,
  isUnknown,
  type KnownActivity,
  type KnownAvailability,
  type PresenceValue,
  PresenceValues,
  StatusMessage,
  UnknownValue
} from "./domain/Presence.ts"
export {
  ClearPresence,
  clearPresence,
  commandEquals,
  commandLabel,
  PbxActivities,
  PbxActivity,
  PbxPresenceCommand,
  SetPresence,
  setPresence
} from "./domain/PbxPresence.ts"
export * as Metrics from "./domain/Metrics.ts"
