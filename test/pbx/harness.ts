/** Test harness: the connector's PBX side served on an ephemeral port, a log capture, and a raw websocket client. */
import { Context, Deferred, Effect, Layer, Logger, Redacted, type Scope, Stream, SubscriptionRef } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import WebSocket from "ws"
import { makeRepeatGate, repeatGateLayer } from "../../src/observability/LogRepeats.ts"
import { nodeServer } from "../../src/http/Server.ts"
import { Licences } from "../../src/pbx/directory/Licences.ts"
import { PbxAppService } from "../../src/pbx/socket/PbxAppService.ts"
import { PbxConnections, type PbxState } from "../../src/pbx/socket/PbxConnections.ts"
import { PbxServices } from "../../src/pbx/PbxLayer.ts"
import { makePbxSettings, PbxSettings, type PbxSettingsOptions } from "../../src/pbx/PbxSettings.ts"
import { PresenceWriter } from "../../src/pbx/writer/PresenceWriter.ts"
import { PbxDirectory } from "../../src/pbx/directory/PbxDirectory.ts"
import type { SimUser } from "../../src/simulators/pbx/PbxSimulator.ts"

export const password = "app-object-secret"

const format = (message: unknown) => (Array.isArray(message) ? message.map(String).join(" ") : String(message))

/**
 * The connector's PBX side on an ephemeral port. `writerConnections` puts a layer between the presence writer and the
 * connection registry (e.g. one that counts the writer's requests); the route and the directory use the registry itself.
 */
export const startConnector = (
  overrides: Partial<PbxSettingsOptions> = {},
  options: { readonly writerConnections?: Layer.Layer<PbxConnections, never, PbxConnections> } = {}
) =>
  Effect.gen(function*() {
    const logs: Array<string> = []
    const logWaiters = new Set<(line: string) => void>()
    const capture = Logger.make(({ logLevel, message }) => {
      const line = `${logLevel}: ${format(message)}`
      logs.push(line)
      for (const waiter of [...logWaiters]) waiter(line)
    })
    const settings = makePbxSettings({ appPassword: Redacted.make(password), masterPbx: "pbx-master", ...overrides })
    const pbxServices = options.writerConnections === undefined
      ? PbxServices
      : Layer.mergeAll(PresenceWriter.layer.pipe(Layer.provide(options.writerConnections)), Licences.layer).pipe(
        Layer.provideMerge(PbxDirectory.layer),
        Layer.provideMerge(PbxConnections.layer)
      )
    const services = pbxServices.pipe(Layer.provideMerge(PbxSettings.layer(settings)))
    const server = HttpRouter.serve(PbxAppService.routes, { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provide(services),
      Layer.provideMerge(nodeServer({ port: 0, host: "127.0.0.1", maxFrameBytes: settings.maxFrameBytes }))
    )
    // As in the connector: repeated warnings of one kind pass the repeat gate once a minute.
    const gate = makeRepeatGate()
    const context = yield* Layer.build(
      Layer.mergeAll(server, services).pipe(
        Layer.provide(repeatGateLayer(gate)),
        Layer.provide(Logger.layer([capture], { mergeWithExisting: false }))
      )
    )
    const address = Context.get(context, HttpServer.HttpServer).address
    const port = address._tag === "UnixPathAddress" ? 0 : address.port
    const connections = Context.get(context, PbxConnections)
    return {
      url: `ws://127.0.0.1:${port}${settings.path}`,
      logs,
      gate,
      connections,
      writer: Context.get(context, PresenceWriter),
      directory: Context.get(context, PbxDirectory),
      licences: Context.get(context, Licences),
      /** Completes with the first log line (already written or still to come) that satisfies `predicate`. */
      logged: (predicate: (line: string) => boolean) =>
        Effect.callback<string>((resume) => {
          const found = logs.find(predicate)
          if (found !== undefined) return resume(Effect.succeed(found))
          const waiter = (line: string) => {
            if (!predicate(line)) return
            logWaiters.delete(waiter)
            resume(Effect.succeed(line))
          }
          logWaiters.add(waiter)
          return Effect.sync(() => void logWaiters.delete(waiter))
        }),
      /** Waits until the PBX states satisfy `check`. */
      waitStates: (check: (states: ReadonlyMap<string, PbxState>) => boolean) =>
        Stream.runHead(Stream.filter(SubscriptionRef.changes(connections.states), check)).pipe(Effect.asVoid)
    }
  })

export const allLoggedIn = (names: ReadonlyArray<string>) => (states: ReadonlyMap<string, PbxState>) =>
  names.every((name) => states.get(name)?.loggedIn === true)

export const makeUsers = (prefix: string, count: number, loc: string, apps: ReadonlyArray<string> = ["teams-presence"]) =>
  Array.from({ length: count }, (_, i): SimUser => ({
    guid: `${prefix}${String(i).padStart(4, "0")}`.padEnd(32, "0"),
    h323: `${prefix}${i}`,
    cn: `${prefix} ${i}`,
    emails: [`${prefix}${i}@example.com`],
    loc,
    apps
  }))

/** A bare websocket client for protocol-level tests: received frames and a Deferred completed on close. */
export const rawClient = (url: string, options: { readonly localAddress?: string } = {}): Effect.Effect<{
  readonly socket: WebSocket
  readonly received: Array<string>
  readonly next: (predicate: (frame: string) => boolean) => Effect.Effect<string>
  readonly closed: Deferred.Deferred<number>
}, never, Scope.Scope> =>
  Effect.gen(function*() {
    const closed = yield* Deferred.make<number>()
    const opened = yield* Deferred.make<void>()
    const received: Array<string> = []
    const waiters = new Set<() => void>()
    const socket = yield* Effect.acquireRelease(
      Effect.sync(() => new WebSocket(url, options)),
      (socket) => Effect.sync(() => socket.terminate())
    )
    socket.on("open", () => Deferred.doneUnsafe(opened, Effect.void))
    socket.on("message", (data) => {
      received.push(data.toString())
      for (const waiter of [...waiters]) waiter()
    })
    socket.on("close", (code) => Deferred.doneUnsafe(closed, Effect.succeed(code)))
    socket.on("error", () => {})
    yield* Deferred.await(opened)
    const next = (predicate: (frame: string) => boolean) =>
      Effect.callback<string>((resume) => {
        const check = () => {
          const found = received.find(predicate)
          if (found === undefined) return
          waiters.delete(check)
          resume(Effect.succeed(found))
        }
        waiters.add(check)
        check()
        return Effect.sync(() => waiters.delete(check))
      })
    return { socket, received, next, closed }
  })
