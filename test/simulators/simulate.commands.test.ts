import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Console, Deferred, Effect, Fiber } from "effect"
import { Command } from "effect/cli"
import { execFile } from "node:child_process"
import { join } from "node:path"
import { simulateGraphCommand, simulatePbxCommand } from "../../src/demo/SimulateCommands.ts"
import { allLoggedIn, password, startConnector } from "../pbx/harness.ts"
import { makeTempDir } from "../support/tempDir.ts"

/** The commands as the CLI mounts them: `simulate graph` and `simulate pbx`. */
const cli = Command.runWith(
  Command.make("teams-presence-connector").pipe(
    Command.withSubcommands([Command.make("simulate").pipe(Command.withSubcommands([simulateGraphCommand, simulatePbxCommand]))])
  ),
  { version: "test" }
)

const quietConsole: Console.Console = Object.assign(Object.create(globalThis.console), { log: () => {}, error: () => {} })

describe("simulate commands", () => {
  it.live("simulate pbx takes the password from PBX_SIM_PASSWORD and connects with the given flags", () =>
    Effect.gen(function*() {
      const connector = yield* startConnector()
      const fiber = yield* cli(["simulate", "pbx", "--connect", connector.url, "--users", "4", "--control-port", "0"]).pipe(
        Effect.provide(NodeServices.layer),
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env: { PBX_SIM_PASSWORD: password } })),
        Effect.provideService(Console.Console, quietConsole),
        Effect.forkChild
      )
      yield* connector.waitStates(allLoggedIn(["pbx-master", "pbx-slave"]))
      yield* connector.directory.ready
      assert.strictEqual((yield* connector.directory.snapshot).size, 4)
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.scoped))

  it.live("simulate graph --port 0 --users 3 serves the generated users until interrupted", () =>
    Effect.gen(function*() {
      const listening = yield* Deferred.make<string>()
      const capture: Console.Console = Object.assign(Object.create(globalThis.console), {
        log: (...args: ReadonlyArray<unknown>) => {
          const found = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(args.join(" "))
          if (found !== null) Deferred.doneUnsafe(listening, Effect.succeed(found[1]!))
        }
      })
      const fiber = yield* cli(["simulate", "graph", "--port", "0", "--users", "3"]).pipe(
        Effect.provide(NodeServices.layer),
        Effect.provideService(Console.Console, capture),
        Effect.forkChild
      )
      const url = yield* Deferred.await(listening)
      const users = yield* Effect.promise(() => fetch(`${url}/_sim/users`).then((r) => r.json() as Promise<Array<{ userPrincipalName: string }>>))
      assert.deepStrictEqual(users.map((u) => u.userPrincipalName).sort(), [
        "presence-1@contoso.com",
        "user1@contoso.com",
        "user2@contoso.com",
        "user3@contoso.com"
      ])
      yield* Fiber.interrupt(fiber)
    }))

  it.live("simulate graph reports an unreadable users file and exits 1", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const capture: Console.Console = Object.assign(Object.create(globalThis.console), {
        log: (...args: ReadonlyArray<unknown>) => void lines.push(args.join(" ")),
        error: (...args: ReadonlyArray<unknown>) => void lines.push(args.join(" "))
      })
      const previousExitCode = process.exitCode
      yield* cli(["simulate", "graph", "--port", "0", "--users-file", "/nonexistent/users.yaml"]).pipe(
        Effect.provide(NodeServices.layer),
        Effect.provideService(Console.Console, capture)
      )
      assert.strictEqual(process.exitCode, 1)
      process.exitCode = previousExitCode
      assert.isTrue(lines.some((line) => line.includes("/nonexistent/users.yaml: 1 problem") && line.includes("cannot read")))
    }))

  it.live("simulate graph --tls serves HTTPS that a Node.js client trusts through NODE_EXTRA_CA_CERTS pointing at the written test CA", () =>
    Effect.gen(function*() {
      const caFile = join(yield* makeTempDir("graph-sim-tls-"), "ca.pem")
      const listening = yield* Deferred.make<string>()
      const capture: Console.Console = Object.assign(Object.create(globalThis.console), {
        log: (...args: ReadonlyArray<unknown>) => {
          const found = /listening on (https:\/\/127\.0\.0\.1:\d+)/.exec(args.join(" "))
          if (found !== null) Deferred.doneUnsafe(listening, Effect.succeed(found[1]!))
        }
      })
      const fiber = yield* cli(["simulate", "graph", "--port", "0", "--users", "2", "--tls", "--tls-ca-file", caFile]).pipe(
        Effect.provide(NodeServices.layer),
        Effect.provideService(Console.Console, capture),
        Effect.forkChild
      )
      const url = yield* Deferred.await(listening)
      const discovery = `${url}/11111111-2222-3333-4444-555555555555/v2.0/.well-known/openid-configuration`
      // A separate Node.js process, as a client of the simulator would be: only the environment variable differs.
      const fetchIn = (env: Record<string, string>) =>
        Effect.callback<string>((resume) => {
          const script = `fetch(${JSON.stringify(discovery)}).then(r => r.json()).then(d => console.log(d.token_endpoint), e => console.log("failed: " + (e.cause?.code ?? e.message)))`
          execFile(process.execPath, ["-e", script], { env: { PATH: process.env.PATH ?? "", ...env } }, (_error, stdout) =>
            resume(Effect.succeed(stdout.trim())))
        })
      assert.strictEqual(yield* fetchIn({ NODE_EXTRA_CA_CERTS: caFile }), `${url}/11111111-2222-3333-4444-555555555555/oauth2/v2.0/token`)
      assert.match(yield* fetchIn({}), /^failed: /)
      yield* Fiber.interrupt(fiber)
    }))
})
