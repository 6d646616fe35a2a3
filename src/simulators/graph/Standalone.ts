/**
 * `teams-presence-connector simulate graph`: the Graph simulator on its own, so an administrator can point a connector
 * (with a real or simulated PBX) at a made-up Microsoft tenant. Prints its made-up credentials and the connector.yaml
 * snippet that uses them, then serves until interrupted. With `--tls` it serves HTTPS with a certificate from a test CA
 * made at start-up (what Microsoft's client libraries need) and writes the CA where clients can be told to trust it.
 */
import { Console, Deferred, Effect, Redacted, type Scope } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { loadPopulation, reportSetupError, type SimPopulation, SimulatorSetupError } from "../UsersFile.ts"
import { GraphSimulator, type GraphSimulatorHandle, type SimExtension } from "./GraphSimulator.ts"
import { JWKS_PATH } from "./SimJwks.ts"
import { SubscriptionsExtension } from "./SubscriptionsRoutes.ts"
import { makeTestCa } from "./TestCa.ts"

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
  /** Serve HTTPS with a certificate from a test CA made at start-up. */
  readonly tls?: boolean | undefined
  /** Where the test CA's certificate (PEM) is written; default a new temporary directory. */
  readonly tlsCaFile?: string | undefined
}

/** GraphSimulator.make listens on 127.0.0.1 only. */
const loopbackHosts = ["127.0.0.1", "localhost"]

const accountName = (upn: string): string => upn.split("@")[0]!.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 64) || "account"

/** The connector.yaml part that points a connector at this simulator (its made-up credentials in clear). */
/** The Graph simulator's tenant, application, technical accounts and Teams users, from a population (users file). */
export const populationOptions = (population: SimPopulation) => ({
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
  }))
})

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

const describe = (sim: GraphSimulatorHandle, population: SimPopulation, caFile: string | undefined): string => {
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
    `OpenID config:   ${sim.url}/${population.tenantId}/v2.0/.well-known/openid-configuration`,
    ...(caFile === undefined ? [] : [
      `test CA:         ${caFile}`,
      `  trust it in the client, e.g. NODE_EXTRA_CA_CERTS=${caFile} for a Node.js client (the connector included)`
    ]),
    "",
    "connector.yaml (add your pbx: section):",
    connectorSnippet(sim.url, population),
    "",
    "Press Ctrl+C to stop."
  ].join("\n")
}

/** A test CA and its server certificate; the CA's certificate is written to `caFile` (default: a new temp dir). */
const testCertificate = Effect.fnUntraced(function*(caFile: string | undefined) {
  const ca = yield* makeTestCa()
  const path = caFile ?? join(mkdtempSync(join(tmpdir(), "graph-sim-ca-")), "test-ca.pem")
  yield* Effect.try({
    try: () => writeFileSync(path, ca.caCertificatePem),
    catch: (error) =>
      new SimulatorSetupError({
        source: "simulate graph",
        problems: [{ path: "--tls-ca-file", message: `the test CA could not be written to ${path}: ${String(error)}` }]
      })
  })
  return { caFile: path, server: { certificatePem: ca.serverCertificatePem, privateKeyPem: ca.serverPrivateKeyPem } }
})

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
  const tls = options.tls === true ? yield* testCertificate(options.tlsCaFile) : undefined
  const sim = yield* GraphSimulator.make({
    port: options.port,
    ...populationOptions(population),
    extensions,
    tls: tls?.server
  })
  yield* Console.log(describe(sim, population, tls?.caFile))
  if (options.ready !== undefined) yield* Deferred.succeed(options.ready, sim)
  return sim
})

/** Runs the simulator until interrupted. */
export const runGraphSimulator = (options: GraphStandaloneOptions): Effect.Effect<never, SimulatorSetupError> =>
  Effect.scoped(Effect.andThen(startGraphSimulator(options), Effect.never))

/** `simulate graph` (src/demo/SimulateCommands.ts): runs until interrupted; a setup problem is printed and exits 1. */
export const simulateGraph = (options: GraphStandaloneOptions): Effect.Effect<void> =>
  runGraphSimulator(options).pipe(Effect.catchTag("SimulatorSetupError", reportSetupError))
