/**
 * `teams-presence-connector simulate graph`: the Graph simulator on its own, so an administrator can point a connector
 * (with a real or simulated PBX) at a made-up Microsoft tenant. Prints its made-up credentials and the connector.yaml
 * snippet that uses them, then serves until interrupted.
 */
import { Console, Deferred, Effect, Redacted, type Scope } from "effect"
import { loadPopulation, reportSetupError, type SimPopulation, SimulatorSetupError } from "../UsersFile.ts"
import { GraphSimulator, type GraphSimulatorHandle, type SimExtension } from "./GraphSimulator.ts"
import { JWKS_PATH } from "./Jwks.ts"
import { SubscriptionsExtension } from "./SubscriptionsRoutes.ts"

/** Served next to the identity platform and Graph: /v1.0/subscriptions with delivery, and the JWKS. */
const extensions: ReadonlyArray<SimExtension> = [SubscriptionsExtension()]

export interface GraphStandaloneOptions {
  readonly port: number
  readonly host: string
  readonly usersFile?: string | undefined
  /** Generated people when no users file (or one without `users`) is given. */
  readonly users?: number | undefined
  /** Completed once the simulator listens (tests, embedding). */
  readonly ready?: Deferred.Deferred<GraphSimulatorHandle> | undefined
}

/** GraphSimulator.make listens on 127.0.0.1 only. */
const loopbackHosts = ["127.0.0.1", "localhost"]

const accountName = (upn: string): string => upn.split("@")[0]!.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 64) || "account"

/** The connector.yaml part that points a connector at this simulator (its made-up credentials in clear). */
export const connectorSnippet = (url: string, population: SimPopulation): string => {
  const lines = [
    `tenantId: ${population.tenantId}`,
    `clientId: ${population.clientId}`,
    "app:",
    `  clientSecret: ${JSON.stringify(Redacted.value(population.clientSecret))}`
  ]
  if (population.accounts.length > 0) {
    lines.push("accounts:")
    for (const account of population.accounts) {
      lines.push(`  - name: ${accountName(account.upn)}`, `    username: ${account.upn}`)
      if (account.password !== undefined && !account.mfa) {
        lines.push("    flow: password", `    password: ${JSON.stringify(Redacted.value(account.password))}`)
      } else {
        lines.push("    flow: deviceCode")
      }
    }
  }
  lines.push(
    "graph:",
    `  loginBaseUrl: ${url}`,
    `  graphBaseUrl: ${url}`,
    `  jwksUrl: ${url}${JWKS_PATH}`,
    "notifications:",
    // Presence subscriptions are delegated-only: without a technical account only polling works.
    population.accounts.length > 0
      ? "  mode: push\n  publicBaseUrl: http://127.0.0.1:8080   # the connector's own address: the simulator posts there"
      : "  mode: poll"
  )
  return lines.join("\n")
}

const describe = (sim: GraphSimulatorHandle, population: SimPopulation): string => {
  const teams = population.people.filter((person) => person.teams).length
  const accounts = population.accounts.map((account) =>
    `  ${account.upn}  password ${account.password === undefined ? "(none: device code)" : Redacted.value(account.password)}${
      account.mfa ? "  (MFA: device code only)" : ""
    }`
  )
  return [
    `Graph simulator listening on ${sim.url}`,
    `  tenant id:     ${population.tenantId}`,
    `  client id:     ${population.clientId}`,
    `  client secret: ${Redacted.value(population.clientSecret)}`,
    `  users:         ${population.people.length} (${teams} with Teams)`,
    "technical accounts:",
    ...(accounts.length === 0 ? ["  (none)"] : accounts),
    `control API:     ${sim.url}/_sim (docs/simulator-graph.md)`,
    "",
    "connector.yaml (add your pbx: section):",
    connectorSnippet(sim.url, population),
    "",
    "Press Ctrl+C to stop."
  ].join("\n")
}

/** Starts the simulator in the scope and prints how to use it. */
export const startGraphSimulator = Effect.fn("GraphStandalone.start")(function*(
  options: GraphStandaloneOptions
): Effect.fn.Return<GraphSimulatorHandle, SimulatorSetupError, Scope.Scope> {
  if (!loopbackHosts.includes(options.host)) {
    return yield* new SimulatorSetupError({
      source: "simulate graph",
      problems: [{ path: "--host", message: `the Graph simulator listens on 127.0.0.1 only; ${options.host} is not supported yet` }]
    })
  }
  const population = yield* loadPopulation({ usersFile: options.usersFile, users: options.users })
  const sim = yield* GraphSimulator.make({
    port: options.port,
    tenantId: population.tenantId,
    clientId: population.clientId,
    clientSecrets: [{ value: Redacted.value(population.clientSecret) }],
    accounts: population.accounts.map((account) => ({
      upn: account.upn,
      password: account.password === undefined ? undefined : Redacted.value(account.password),
      mfa: account.mfa
    })),
    users: population.people.map((person) => ({
      id: person.graphId,
      displayName: person.name,
      userPrincipalName: person.upn,
      mail: person.email,
      otherMails: [],
      teams: person.teams
    })),
    extensions
  })
  yield* Console.log(describe(sim, population))
  if (options.ready !== undefined) yield* Deferred.succeed(options.ready, sim)
  return sim
})

/** Runs the simulator until interrupted. */
export const runGraphSimulator = (options: GraphStandaloneOptions): Effect.Effect<never, SimulatorSetupError> =>
  Effect.scoped(Effect.andThen(startGraphSimulator(options), Effect.never))

/** `simulate graph` (src/SimulateCommands.ts): runs until interrupted; a setup problem is printed and exits 1. */
export const simulateGraph = (options: GraphStandaloneOptions): Effect.Effect<void> =>
  runGraphSimulator(options).pipe(Effect.catchTag("SimulatorSetupError", reportSetupError))
