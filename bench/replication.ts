/**
 * `node bench/replication.ts [users] [runs]`: the initial load of the PBX user table alone — the connector's PBX side
 * (app service, connection registry, directory) and the PBX simulator with `users` users (the demo's rows) in this
 * process over a real websocket on 127.0.0.1, as in `npm run bench` where the simulator shares the machine. Prints one
 * JSON line per run: wall time and this process's CPU time from the simulator's start to the directory's first load.
 * `--cpu-prof` on the node command line gives the profile (bench/profileTop.ts reads it).
 */
import { Context, Effect, Layer, Logger, Redacted } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { nodeServer } from "../src/http/Server.ts"
import { PbxDirectory } from "../src/pbx/directory/PbxDirectory.ts"
import { PbxServices } from "../src/pbx/PbxLayer.ts"
import { makePbxSettings, PbxSettings } from "../src/pbx/PbxSettings.ts"
import { PbxAppService } from "../src/pbx/socket/PbxAppService.ts"
import { demoSystemOptions, PbxSimulator } from "../src/simulators/pbx/PbxSimulator.ts"

const USERS = Number(process.argv[2] ?? 100_000)
const RUNS = Number(process.argv[3] ?? 1)
const password = "bench-app-password"

const once = Effect.gen(function*() {
  const settings = makePbxSettings({ appPassword: Redacted.make(password), masterPbx: "pbx-master" })
  const services = PbxServices.pipe(Layer.provideMerge(PbxSettings.layer(settings)))
  const server = HttpRouter.serve(PbxAppService.routes, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provide(services),
    Layer.provideMerge(nodeServer({ port: 0, host: "127.0.0.1", maxFrameBytes: settings.maxFrameBytes }))
  )
  const context = yield* Layer.build(Layer.mergeAll(server, services).pipe(Layer.provide(Logger.layer([], { mergeWithExisting: false }))))
  const address = Context.get(context, HttpServer.HttpServer).address
  const port = address._tag === "UnixPathAddress" ? 0 : address.port
  const options = demoSystemOptions({ connectUrl: `ws://127.0.0.1:${port}${settings.path}`, password, userCount: USERS })
  const started = performance.now()
  const cpu = process.cpuUsage()
  yield* PbxSimulator.make({ ...options, keepAliveMs: 0 })
  yield* Context.get(context, PbxDirectory).ready
  const used = process.cpuUsage(cpu)
  const snapshot = yield* Context.get(context, PbxDirectory).snapshot
  return {
    users: USERS,
    loaded: snapshot.size,
    wallMs: Math.round(performance.now() - started),
    cpuMs: Math.round((used.user + used.system) / 1000),
    cpuMicrosPerRow: Math.round(((used.user + used.system) / USERS) * 10) / 10
  }
}).pipe(Effect.scoped)

Effect.runPromise(Effect.forEach(Array.from({ length: RUNS }), () =>
  Effect.flatMap(once, (result) => Effect.sync(() => process.stdout.write(`${JSON.stringify(result)}\n`))))).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`[replication] could not run: ${String(error)}\n`)
    process.exit(1)
  }
)
