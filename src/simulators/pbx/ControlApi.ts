/**
 * The PBX simulator's HTTP control API (docs/simulator-pbx.md): JSON over plain HTTP on its own port, for driving a
 * running simulator from outside (demo, manual tests).
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { Effect, Exit, Schema, type Scope } from "effect"
import type { PbxSimulatorHandle } from "./SimulatorHandle.ts"
import { SimUser } from "./SimulatorModel.ts"

const UserBody = Schema.Struct({ user: SimUser, home: Schema.optionalKey(Schema.String) })
const LicsBody = Schema.Struct({ lics: Schema.Int })
const ApisBody = Schema.Struct({ apis: Schema.Array(Schema.String) })
const LicencesBody = Schema.Struct({ licences: Schema.Array(Schema.String) })
const AllObjectsBody = Schema.Struct({ on: Schema.Boolean })
const StallBody = Schema.Struct({ count: Schema.optionalKey(Schema.Int) })
const DropBody = Schema.Struct({ reconnect: Schema.optionalKey(Schema.Boolean) })
const CallBody = Schema.Struct({ state: Schema.optionalKey(Schema.Literals(["alerting", "connected"])) })
const CallChange = Schema.Struct({ state: Schema.optionalKey(Schema.Literals(["alerting", "connected"])), hold: Schema.optionalKey(Schema.Boolean) })
const BehaviourBody = Schema.Struct({ refuse: Schema.optionalKey(Schema.NullOr(Schema.String)), delayMs: Schema.optionalKey(Schema.Number) })

const readBody = (request: IncomingMessage) =>
  new Promise<string>((resolve, reject) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    request.on("error", reject)
  })

const reply = (response: ServerResponse, status: number, body: unknown) => {
  response.writeHead(status, { "content-type": "application/json" })
  response.end(JSON.stringify(body ?? null))
}

const decodeJson = <S extends Schema.Top & { readonly DecodingServices: never }>(schema: S, text: string) =>
  Schema.decodeUnknownEffect(Schema.fromJsonString(schema))(text === "" ? "{}" : text).pipe(
    Effect.mapError((error) => ({ status: 400, message: error.message }))
  )

type Handler = (body: string, params: ReadonlyArray<string>) => Effect.Effect<unknown, { status: number; message: string }>

const fail = (error: { readonly message: string }) => ({ status: 404, message: error.message })

const routes = (handle: Omit<PbxSimulatorHandle, "controlUrl">): ReadonlyArray<[string, RegExp, Handler]> => [
  ["GET", /^\/pbxs$/, () => handle.status],
  ["GET", /^\/users$/, () => handle.users],
  ["PUT", /^\/users$/, (body) => Effect.flatMap(decodeJson(UserBody, body), ({ home, user }) => handle.upsertUser(user, home))],
  ["PUT", /^\/users\/([^/]+)\/licences$/, (body, [guid]) =>
    Effect.flatMap(decodeJson(LicencesBody, body), ({ licences }) => Effect.mapError(handle.setAppLicences(guid!, licences), fail))],
  ["DELETE", /^\/users\/([^/]+)$/, (_, [guid]) => handle.removeUser(guid!)],
  ["GET", /^\/users\/([^/]+)\/presence$/, (_, [guid]) => handle.presence(guid!)],
  ["GET", /^\/setpresence$/, () => handle.setPresenceLog],
  ["PUT", /^\/pbxs\/([^/]+)\/lics$/, (body, [pbx]) =>
    Effect.flatMap(decodeJson(LicsBody, body), ({ lics }) => Effect.mapError(handle.setLicences(pbx!, lics), fail))],
  ["PUT", /^\/pbxs\/([^/]+)\/apis$/, (body, [pbx]) =>
    Effect.flatMap(decodeJson(ApisBody, body), ({ apis }) => Effect.mapError(handle.setApis(pbx!, apis), fail))],
  ["PUT", /^\/pbxs\/([^/]+)\/replicate-all-objects$/, (body, [pbx]) =>
    Effect.flatMap(decodeJson(AllObjectsBody, body), ({ on }) => Effect.mapError(handle.setReplicateAllObjects(pbx!, on), fail))],
  ["POST", /^\/pbxs\/([^/]+)\/drop$/, (body, [pbx]) =>
    Effect.flatMap(decodeJson(DropBody, body), (options) => Effect.mapError(handle.drop(pbx!, options), fail))],
  ["PUT", /^\/pbxs\/([^/]+)\/replication-stall$/, (body, [pbx]) =>
    Effect.flatMap(decodeJson(StallBody, body), ({ count }) => Effect.mapError(handle.stallReplication(pbx!, count), fail))],
  ["POST", /^\/pbxs\/([^/]+)\/reconnect$/, (_, [pbx]) => Effect.mapError(handle.reconnect(pbx!), fail)],
  ["PUT", /^\/pbxs\/([^/]+)\/setpresence$/, (body, [pbx]) =>
    Effect.flatMap(decodeJson(BehaviourBody, body), (behaviour) =>
      Effect.mapError(
        handle.setPresenceBehaviour(pbx!, {
          ...("refuse" in behaviour ? { refuse: behaviour.refuse ?? undefined } : {}),
          ...(behaviour.delayMs !== undefined ? { delayMs: behaviour.delayMs } : {})
        }),
        fail
      ))],
  ["POST", /^\/pbxs\/([^/]+)\/raw$/, (body, [pbx]) => Effect.mapError(handle.sendRaw(pbx!, body), fail)],
  ["GET", /^\/calls$/, () => handle.calls],
  ["POST", /^\/users\/([^/]+)\/calls$/, (body, [guid]) =>
    Effect.flatMap(decodeJson(CallBody, body), (options) =>
      Effect.mapError(Effect.map(handle.placeCall(guid!, options), (call) => ({ call })), fail))],
  ["PUT", /^\/calls\/(\d+)$/, (body, [id]) =>
    Effect.flatMap(decodeJson(CallChange, body), (change) => Effect.mapError(handle.updateCall(Number(id), change), fail))],
  ["DELETE", /^\/calls\/(\d+)$/, (_, [id]) => Effect.mapError(handle.endCall(Number(id)), fail)]
]

/** Starts the control server on 127.0.0.1 and returns its base URL; closed with the scope. */
export const startControlServer = (
  port: number,
  handle: Omit<PbxSimulatorHandle, "controlUrl">
): Effect.Effect<string, never, Scope.Scope> => {
  const table = routes(handle)
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://localhost")
    const path = decodeURIComponent(url.pathname)
    const match = table
      .map(([method, pattern, handler]) => ({ method, handler, found: pattern.exec(path) }))
      .find((route) => route.found !== null && route.method === request.method)
    if (match === undefined || match.found === null) return reply(response, 404, { error: `no route ${request.method} ${path}` })
    const params = match.found.slice(1)
    readBody(request).then(
      (body) =>
        Effect.runPromiseExit(match.handler(body, params)).then((exit) => {
          if (Exit.isSuccess(exit)) return reply(response, 200, exit.value ?? { ok: true })
          const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")
          return error !== undefined && error._tag === "Fail"
            ? reply(response, error.error.status, { error: error.error.message })
            : reply(response, 500, { error: "internal error" })
        }),
      () => reply(response, 400, { error: "could not read the request body" })
    )
  })
  return Effect.acquireRelease(
    Effect.callback<string>((resume) => {
      server.listen(port, "127.0.0.1", () => {
        const address = server.address() as AddressInfo
        resume(Effect.succeed(`http://127.0.0.1:${address.port}`))
      })
    }),
    () => Effect.callback<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
  )
}
