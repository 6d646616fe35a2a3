/**
 * `simulate graph` and `simulate pbx`: the commands' flags, with the simulators loaded only when one of them runs (a
 * dynamic import), so that `run` and the package's main entry never load simulator code.
 */
import { Config, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"

export const simulateGraphCommand = Command.make("graph", {
  port: Flag.Int("port").pipe(Flag.withDescription("Port to listen on (0 = any free port)"), Flag.withDefault(8081)),
  host: Flag.String("host").pipe(Flag.withDescription("Address to listen on"), Flag.withDefault("127.0.0.1")),
  usersFile: Flag.String("users-file").pipe(
    Flag.withDescription("Users file (YAML or JSON; docs/simulator-graph.md \"Running it on its own\")"),
    Flag.optional
  ),
  users: Flag.Int("users").pipe(Flag.withDescription("Generated users when the users file lists none"), Flag.withDefault(50)),
  tls: Flag.Boolean("tls").pipe(
    Flag.withDescription("Serve HTTPS with a certificate from a test CA made at start-up (Microsoft's client libraries need it)"),
    Flag.withDefault(false)
  ),
  tlsCaFile: Flag.String("tls-ca-file").pipe(
    Flag.withDescription("With --tls: where to write the test CA's certificate (default: a new temporary directory)"),
    Flag.optional
  )
}, ({ host, port, tls, tlsCaFile, users, usersFile }) =>
  Effect.promise(() => import("../simulators/graph/Standalone.ts")).pipe(
    Effect.flatMap((standalone) =>
      standalone.simulateGraph({
        port,
        host,
        users,
        usersFile: Option.getOrUndefined(usersFile),
        tls,
        tlsCaFile: Option.getOrUndefined(tlsCaFile)
      })
    )
  )).pipe(Command.withDescription("Run the Microsoft Graph + identity platform simulator on its own"))

export const simulatePbxCommand = Command.make("pbx", {
  connect: Flag.String("connect").pipe(Flag.withDescription("The connector's PBX websocket URL, e.g. ws://127.0.0.1:8080/pbx")),
  password: Flag.Redacted("password").pipe(
    Flag.withDescription("The App objects' password (the connector's pbx.appPassword); or $PBX_SIM_PASSWORD"),
    Flag.withFallbackConfig(Config.Redacted("PBX_SIM_PASSWORD"))
  ),
  usersFile: Flag.String("users-file").pipe(
    Flag.withDescription("Users file (YAML or JSON; docs/simulator-pbx.md \"Running it on its own\")"),
    Flag.optional
  ),
  users: Flag.Int("users").pipe(Flag.withDescription("Generated users when the users file lists none"), Flag.withDefault(50)),
  controlPort: Flag.Int("control-port").pipe(Flag.withDescription("Port of the HTTP control API (0 = any free port)"), Flag.withDefault(8082)),
  domain: Flag.String("domain").pipe(Flag.withDescription("The PBX domain (default: the users file's, else example.com)"), Flag.optional)
}, ({ connect, controlPort, domain, password, users, usersFile }) =>
  Effect.promise(() => import("../simulators/pbx/Standalone.ts")).pipe(
    Effect.flatMap((standalone) =>
      standalone.simulatePbx({
        connect,
        password,
        users,
        controlPort,
        usersFile: Option.getOrUndefined(usersFile),
        domain: Option.getOrUndefined(domain)
      })
    )
  )).pipe(Command.withDescription("Run simulated innovaphone PBXs (master + slave) that connect to a running connector"))

export const simulateCommand = Command.make("simulate").pipe(
  Command.withDescription("Run a simulator on its own: the Microsoft side (graph) or a PBX system (pbx)"),
  Command.withSubcommands([simulateGraphCommand, simulatePbxCommand])
)
