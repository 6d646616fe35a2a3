/**
 * `teams-presence-connector simulate pbx`: the PBX simulator on its own — a master and slaves (as the users file says)
 * that connect to a running connector's `/pbx` endpoint as real PBXs would, so the real Microsoft side can be tried
 * against a made-up PBX. Reconnects until the connector is up; runs until interrupted.
 */
import { Console, Deferred, Effect, Option, type Redacted, type Scope } from "effect"
import { loadPopulation, reportSetupError, type SimPopulation, SimulatorSetupError } from "../UsersFile.ts"
import { type PbxSimulatorHandle, type PbxSimulatorOptions, PbxSimulator, type SimPbxStatus } from "./PbxSimulator.ts"

export interface PbxStandaloneOptions {
  /** ws:// or wss:// URL of the connector's PBX endpoint (what the App object's URL would be). */
  readonly connect: string
  /** The App objects' password (the connector's pbx.appPassword). */
  readonly password: Redacted.Redacted<string>
  readonly usersFile?: string | undefined
  readonly users?: number | undefined
  /** Port of the HTTP control API (0 = any free port). */
  readonly controlPort: number
  /** The PBX domain; overrides the users file's. */
  readonly domain?: string | undefined
  /** Delay before a refused or dropped connection is tried again (default 2 s). */
  readonly reconnectDelayMs?: number | undefined
  /** Completed once the simulator is started (tests, embedding). */
  readonly ready?: Deferred.Deferred<PbxSimulatorHandle> | undefined
}

const checkConnectUrl = (url: string): SimulatorSetupError | undefined => {
  const parsed = URL.canParse(url) ? new URL(url) : undefined
  return parsed !== undefined && (parsed.protocol === "ws:" || parsed.protocol === "wss:")
    ? undefined
    : new SimulatorSetupError({
      source: "simulate pbx",
      problems: [{ path: "--connect", message: `expected the connector's websocket URL such as ws://127.0.0.1:8080/pbx, got "${url}"` }]
    })
}

/** The simulator options for a population: one App object per PBX, each user at their PBX. */
export const pbxSystemOptions = (
  population: SimPopulation,
  options: { readonly connectUrl: string; readonly password: Redacted.Redacted<string>; readonly controlPort?: number; readonly reconnectDelayMs?: number }
): PbxSimulatorOptions => ({
  connectUrl: options.connectUrl,
  domain: population.domain,
  reconnectDelayMs: options.reconnectDelayMs ?? 2000,
  ...(options.controlPort !== undefined ? { controlPort: options.controlPort } : {}),
  pbxs: population.pbxs.map((pbx) => ({
    name: pbx.name,
    isMaster: pbx.master,
    password: options.password,
    lics: pbx.lics,
    appObject: population.appName,
    users: population.people
      .map((person, index) => ({ person, index }))
      .filter(({ person }) => person.pbx === pbx.name)
      .map(({ index, person }) => ({
        guid: person.pbxGuid,
        h323: person.h323,
        cn: person.name,
        dn: person.name,
        e164: String(1000 + index + 1),
        emails: [person.email],
        loc: pbx.name,
        node: "root",
        apps: person.apps
      }))
  }))
})

const stateText = (status: SimPbxStatus): string =>
  status.loggedIn ? "logged in" : status.connected ? "connected, logging in" : "not connected (retrying)"

/** Prints each PBX's connection state whenever it changes, and a hint when the connector refuses the login. */
const reportStatus = Effect.fnUntraced(function*(sim: PbxSimulatorHandle) {
  let last = new Map<string, string>()
  const key = (status: SimPbxStatus) => `${stateText(status)}/${status.loginsRefused}`
  while (true) {
    const statuses = yield* sim.waitFor(() => {
      const now = sim.peek.status()
      return now.some((status) => last.get(status.name) !== key(status)) ? now : undefined
    }, 24 * 3600 * 1000).pipe(Effect.option)
    if (Option.isNone(statuses)) continue
    for (const status of statuses.value) {
      const previous = last.get(status.name)
      if (previous === key(status)) continue
      const refused = previous !== undefined && status.loginsRefused > Number(previous.split("/")[1])
      yield* Console.log(
        refused
          ? `${status.name}: the connector refused the login (wrong --password, or a PBX name it does not expect?)`
          : `${status.name}${status.isMaster ? " (master)" : ""}: ${stateText(status)}`
      )
    }
    last = new Map(statuses.value.map((status) => [status.name, key(status)]))
  }
})

/** Starts the simulated PBXs in the scope and prints how to drive them. */
export const startPbxSimulator = Effect.fn("PbxStandalone.start")(function*(
  options: PbxStandaloneOptions
): Effect.fn.Return<PbxSimulatorHandle, SimulatorSetupError, Scope.Scope> {
  const urlProblem = checkConnectUrl(options.connect)
  if (urlProblem !== undefined) return yield* urlProblem
  const loaded = yield* loadPopulation({ usersFile: options.usersFile, users: options.users })
  const population = options.domain === undefined ? loaded : { ...loaded, domain: options.domain }
  const sim = yield* PbxSimulator.make(pbxSystemOptions(population, {
    connectUrl: options.connect,
    password: options.password,
    controlPort: options.controlPort,
    ...(options.reconnectDelayMs !== undefined ? { reconnectDelayMs: options.reconnectDelayMs } : {})
  }))
  const master = population.pbxs.find((pbx) => pbx.master)!
  yield* Console.log([
    `PBX simulator: ${population.pbxs.map((pbx) => `${pbx.name}${pbx.master ? " (master)" : ""}`).join(", ")} of ${population.domain}`,
    `  connecting to: ${options.connect}`,
    `  App object:    ${population.appName} (service licences: ${population.pbxs.map((pbx) => `${pbx.name} ${pbx.lics ?? "none"}`).join(", ")})`,
    `  users:         ${population.people.length}`,
    `control API:     ${sim.controlUrl ?? "(none)"} (docs/simulator-pbx.md)`,
    "",
    "connector.yaml pbx section (the App password is the --password given here):",
    "pbx:",
    `  masterPbx: ${master.name}`,
    `  path: ${new URL(options.connect).pathname}`,
    `  appName: ${population.appName}`,
    "",
    "Press Ctrl+C to stop."
  ].join("\n"))
  yield* Effect.forkScoped(reportStatus(sim))
  if (options.ready !== undefined) yield* Deferred.succeed(options.ready, sim)
  return sim
})

/** Runs the simulated PBXs until interrupted. */
export const runPbxSimulator = (options: PbxStandaloneOptions): Effect.Effect<never, SimulatorSetupError> =>
  Effect.scoped(Effect.andThen(startPbxSimulator(options), Effect.never))

/** `simulate pbx` (src/demo/SimulateCommands.ts): runs until interrupted; a setup problem is printed and exits 1. */
export const simulatePbx = (options: PbxStandaloneOptions): Effect.Effect<void> =>
  runPbxSimulator(options).pipe(Effect.catchTag("SimulatorSetupError", reportSetupError))
