/**
 * The admin HTTP API for tenants (docs/tenants.md), behind the provider's admin password — exactly what
 * `tenants add|update|remove|list` do, through the same functions (TenantManagement.ts) on the process's store:
 *
 *   GET    /api/tenants        the stored tenants, without secrets
 *   GET    /api/tenants/<id>   one of them
 *   POST   /api/tenants/<id>   add: the body is a tenant file (JSON or YAML); 201, 409 if it exists
 *   PUT    /api/tenants/<id>   update; 404 if there is no such tenant
 *   DELETE /api/tenants/<id>   remove, with everything stored for it
 *
 * A body that is not a valid tenant configuration is 400 with every problem at once, and nothing is stored. The
 * running process follows the store: an added tenant starts, a removed one stops and deletes its Graph subscriptions.
 */
import { Effect, Option } from "effect"
import { HttpRouter, HttpServerRequest, type HttpServerResponse } from "effect/http"
import { ConfigError, parseConfigText } from "../config/ConfigFile.ts"
import { decodeTenantConfig } from "../config/TenantFile.ts"
import type { StateStore } from "../state/StateStore.ts"
import type { StateStoreError } from "../state/StateStoreError.ts"
import { json } from "../status/StatusRoutes.ts"
import { addTenant, managedId, removeTenant, summarize, type TenantPresence, updateTenant } from "./TenantManagement.ts"

/** The largest tenant file taken (a tenant file is a few kilobytes). */
const maxBodyBytes = 256 * 1024

type Guard = <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest>

/** Every failure as its answer: the problems (400), the tenant's presence (404 / 409), the store (503). */
const answered = <R>(effect: Effect.Effect<HttpServerResponse.HttpServerResponse, ConfigError | TenantPresence | StateStoreError, R>) =>
  effect.pipe(Effect.catchTags({
    ConfigError: (error) => Effect.succeed(json({ error: error.message, problems: error.problems }, 400)),
    TenantPresence: (error) => Effect.succeed(json({ error: error.message }, error.found ? 409 : 404)),
    StateStoreError: (error) =>
      Effect.logError(`tenants API: ${error.message}`).pipe(Effect.as(json({ error: `the state store: ${error.message}` }, 503)))
  }))

const idParam = (source: string) => Effect.flatMap(HttpRouter.params, ({ id = "" }) => managedId(id, source))

/** The request's body as a tenant configuration, checked: every problem at once. */
const bodyConfig = Effect.fnUntraced(function*(source: string) {
  const request = yield* HttpServerRequest.HttpServerRequest
  // Behind the admin password only; still, a tenant file is a few kilobytes.
  if (Number(request.headers["content-length"] ?? 0) > maxBodyBytes) {
    return yield* new ConfigError({ source, problems: [{ path: "(body)", message: `over ${maxBodyBytes} bytes: not a tenant file` }] })
  }
  const text = yield* request.text.pipe(
    Effect.mapError(() => new ConfigError({ source, problems: [{ path: "(body)", message: "the request's body could not be read" }] }))
  )
  return yield* decodeTenantConfig(yield* parseConfigText(text, source), source)
})

export const tenantsApiRoutes = (store: StateStore["Service"], guarded: Guard) =>
  HttpRouter.use(Effect.fnUntraced(function*(router) {
    yield* router.add("GET", "/api/tenants", guarded(answered(Effect.map(store.tenants.list, (tenants) => json({ tenants: tenants.map(summarize) })))))
    yield* router.add("GET", "/api/tenants/:id", guarded(answered(Effect.gen(function*() {
      const id = yield* idParam("GET /api/tenants")
      const found = yield* store.tenants.get(id)
      return Option.isSome(found) ? json(summarize(found.value)) : json({ error: `there is no tenant ${id}` }, 404)
    }))))
    for (const [method, put, status] of [["POST", addTenant, 201], ["PUT", updateTenant, 200]] as const) {
      yield* router.add(method, "/api/tenants/:id", guarded(answered(Effect.gen(function*() {
        const source = `${method} /api/tenants`
        const id = yield* idParam(source)
        const config = yield* bodyConfig(`${source}/${id}`)
        const stored = yield* put(store, id, config)
        yield* Effect.logInfo(`tenants API: tenant ${id} ${method === "POST" ? "added" : "updated"} (version ${stored.version})`)
        return json(summarize(stored), status)
      }))))
    }
    yield* router.add("DELETE", "/api/tenants/:id", guarded(answered(Effect.gen(function*() {
      const id = yield* idParam("DELETE /api/tenants")
      yield* removeTenant(store, id)
      yield* Effect.logInfo(`tenants API: tenant ${id} removed`)
      return json({ removed: id })
    }))))
  }))
