/**
 * Process entry point: the CLI on Node's runtime. SIGINT/SIGTERM interrupt the fiber tree, which shuts down in order.
 * The package's bin (src/bin.ts) checks the Node.js version first and then loads this module.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, Effect, Exit, Runtime } from "effect"
import { cli } from "./cli/Cli.ts"
import { exitCodeOf } from "./connector/Shutdown.ts"

/** A stop by signal after a clean shutdown is a success: exit 0 (or the code a command chose), not 130. */
const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(exitCodeOf(exit)) : Runtime.defaultTeardown(exit, onExit)

cli.pipe(Effect.provide(NodeServices.layer), NodeRuntime.runMain({ teardown }))
