/**
 * `teams-presence-connector/testing`: the simulators and the embedded demo, for an application's own tests — the
 * Graph and identity platform simulator, the innovaphone PBX simulator (master and slaves) and the whole demo.
 * Production code imports `teams-presence-connector` (src/index.ts), which never loads these. Re-exports only.
 */
export {
  generateUsers,
  GraphSimulator,
  type GraphSimulatorHandle,
  type GraphSimulatorOptions,
  simUserId,
  startDemoGraphSimulator
} from "./simulators/graph/GraphSimulator.ts"
export { SubscriptionsExtension } from "./simulators/graph/SubscriptionsRoutes.ts"
export { JWKS_PATH } from "./simulators/graph/SimJwks.ts"
export {
  demoSystemOptions,
  type PresenceEntry,
  PbxSimulator,
  type PbxSimulatorHandle,
  type PbxSimulatorOptions,
  type SetPresenceRecord,
  type SimPbxOptions
} from "./simulators/pbx/PbxSimulator.ts"
export { type DemoHandle, type DemoOptions, startDemo } from "./demo/Demo.ts"
export { runGraphSimulator, startGraphSimulator, type GraphStandaloneOptions } from "./simulators/graph/Standalone.ts"
export { runPbxSimulator, startPbxSimulator, type PbxStandaloneOptions } from "./simulators/pbx/Standalone.ts"
