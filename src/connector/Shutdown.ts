/**
 * A stop is logged from start to end, so an operator can tell it from a crash: "stopping (SIGTERM received)", one line
 * as each part of the connector begins to stop (docs/architecture.md, Shutdown order), and "stopped … exit code 0".
 * The exit code follows one rule for the log line and the process: a stop by signal (an interruption) is a success.
 */
import { Cause, Clock, Effect, Exit, Layer, type Scope } from "effect"
import { ephemeralPortRange } from "../http/Listen.ts"

/** The process's exit code for the main program's end: interruption only → the code a command chose, else 0. */
export const exitCodeOf = (exit: Exit.Exit<unknown, unknown>): number =>
  Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)
    ? typeof process.exitCode === "number" ? process.exitCode : 0
    : 1

/**
 * For a port inside the kernel's ephemeral range: any program's outgoing connection or port-0 server may hold it for a
 * while, so it can be taken at one start and free at the next.
 */
const ephemeralHint = (port: number, range = ephemeralPortRange()): string =>
  range !== undefined && port >= range[0] && port <= range[1]
    ? `; it lies in the range the kernel hands out to outgoing connections and port-0 servers (${range[0]}–${range[1]}, ` +
      `net.ipv4.ip_local_port_range), where any program may hold it for a while: choose one outside it`
    : ""

/** The codes of a listen that failed, in an administrator's words: what is wrong and which setting changes it. */
const listenProblems: Record<string, (address: string, port: number) => string> = {
  EADDRINUSE: (address, port) =>
    `port ${port} on ${address} is already in use (another process listens there): stop it or choose another port (http.port, PORT)` +
    ephemeralHint(port),
  EACCES: (address, port) =>
    `port ${port} on ${address} may not be opened by this user (ports below 1024 need privileges): choose another port (http.port, PORT)`,
  EADDRNOTAVAIL: (address) => `${address} is not an address of this machine: choose another one (http.host, CONNECTOR_HTTP_HOST)`
}

/** A failed listen (Node's error, or one wrapping it as its `cause`, as effect's HttpServer does), described. */
const listenProblem = (error: unknown, depth = 0): string | undefined => {
  if (typeof error !== "object" || error === null || depth > 3) return undefined
  const { address, cause, code, port, syscall } = error as { address?: unknown; cause?: unknown; code?: unknown; port?: unknown; syscall?: unknown }
  const describe = typeof code === "string" && (syscall === "listen" || syscall === "bind") ? listenProblems[code] : undefined
  return describe !== undefined ? describe(String(address), Number(port)) : listenProblem(cause, depth + 1)
}

/**
 * Why the program ended with a failure, for its last lines in the log: a port that cannot be listened on in an
 * administrator's words, else the error's own message (an error of the connector's never carries a secret).
 */
export const failureReason = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const message = typeof error === "object" && error !== null && "message" in error ? error.message : undefined
  return listenProblem(error) ?? (typeof message === "string" ? message : String(error))
}

/** Adds a line to a layer's release: `stopping <what>`, written when the layer begins to stop. */
export const announcedStop = (what: string) => <A, E, R>(layer: Layer.Layer<A, E, R>): Layer.Layer<A, E, R> =>
  Layer.effectDiscard(Effect.addFinalizer(() => Effect.logInfo(`stopping ${what}`))).pipe(Layer.provideMerge(layer))

const stopSignals = ["SIGINT", "SIGTERM"] as const

/** Remembers which stop signal arrived (the runtime itself interrupts the program on it), for the log line. */
const signalRecorder: Effect.Effect<() => string | undefined, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => {
    let received: string | undefined
    const listeners: Array<readonly [NodeJS.Signals, () => void]> = stopSignals.map((signal) => [signal, () => void (received ??= signal)] as const)
    // SIGHUP (the terminal or session gone) would end the process at once, without closing anything: it stops the
    // connector as SIGTERM does (the runtime's own listener), and the log names it.
    listeners.push(["SIGHUP", () => {
      received ??= "SIGHUP"
      process.kill(process.pid, "SIGTERM")
    }])
    // Before the runtime's own listener, which starts the stop at once.
    for (const [signal, listener] of listeners) process.prependListener(signal, listener)
    return { received: () => received, listeners }
  }),
  ({ listeners }) => Effect.sync(() => listeners.forEach(([signal, listener]) => process.off(signal, listener)))
).pipe(Effect.map(({ received }) => received))

/**
 * Runs `start` (which builds the program in the current scope) until it is interrupted, logging the stop around the
 * release of everything it built. A failure is logged with its reason before the exit code — "cannot start: …" when
 * the start itself failed —, so the log of a process that ended by itself always says why.
 */
export const runUntilStopped = <E, R>(start: Effect.Effect<unknown, E, R | Scope.Scope>) =>
  Effect.suspend(() => {
    let stoppingAt: number | undefined
    const run = Effect.scoped(Effect.gen(function*() {
      const received = yield* signalRecorder
      yield* start
      // Added last, so it is the first finalizer to run.
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          stoppingAt = yield* Clock.currentTimeMillis
          const signal = received()
          yield* Effect.logInfo(`stopping${signal !== undefined ? ` (${signal} received)` : ""}`)
        })
      )
      return yield* Effect.never
    }))
    return run.pipe(
      Effect.onExit((exit) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const took = stoppingAt === undefined ? "" : ` after ${((now - stoppingAt) / 1000).toFixed(1)} s`
          const code = exitCodeOf(exit)
          if (Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)) {
            yield* Effect.logError(`${stoppingAt === undefined ? "cannot start" : "failed"}: ${failureReason(exit.cause)}`)
          }
          yield* code === 0 ? Effect.logInfo(`stopped${took}; exit code ${code}`) : Effect.logError(`stopped${took}; exit code ${code}`)
        })
      )
    )
  })
