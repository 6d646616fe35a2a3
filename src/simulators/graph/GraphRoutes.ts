/**
 * The simulator's Graph endpoints (protocols.md §1.3–1.4): `/v1.0/users` ($select, $top ≤ 999, paging with
 * `@odata.nextLink`, the assignedPlans advanced query), `/v1.0/users/{id}`, `/v1.0/users/{id}/presence` and
 * `POST /v1.0/communications/getPresencesByUserId` (≤ 650 ids, 429 above the rate limit).
 */
import { Effect, Option, Schema } from "effect"
import { Headers, HttpRouter, HttpServerRequest, type HttpServerResponse } from "effect/http"
import { isoSeconds, SimHttpError, SimState, type SimUser, teamsServicePlanId } from "./SimState.ts"

export interface GraphRouteOptions {
  /** getPresencesByUserId requests allowed per window per app (Graph: 1,500 per 30 s). */
  readonly presenceRequestsPerWindow: number
  readonly presenceWindowSeconds: number
}

const defaultProperties = [
  "businessPhones",
  "displayName",
  "givenName",
  "jobTitle",
  "mail",
  "mobilePhone",
  "officeLocation",
  "preferredLanguage",
  "surname",
  "userPrincipalName",
  "id"
]

/** The full user as Graph would render it; `$select` picks from it. */
const renderUser = (user: SimUser, assignedDateTime: string): Record<string, unknown> => ({
  businessPhones: [],
  displayName: user.displayName,
  givenName: null,
  jobTitle: null,
  mail: user.mail,
  mobilePhone: null,
  officeLocation: null,
  preferredLanguage: null,
  surname: null,
  userPrincipalName: user.userPrincipalName,
  id: user.id,
  otherMails: user.otherMails,
  accountEnabled: user.accountEnabled,
  assignedPlans: user.teams
    ? [
      { assignedDateTime, capabilityStatus: "Enabled", service: "TeamspaceAPI", servicePlanId: teamsServicePlanId },
      {
        assignedDateTime,
        capabilityStatus: "Enabled",
        service: "exchange",
        servicePlanId: "efb87545-963c-4e0d-99df-69c6916d9eb0"
      }
    ]
    : []
})

const project = (user: Record<string, unknown>, select: ReadonlyArray<string>) => {
  const out: Record<string, unknown> = {}
  for (const key of select) if (key in user) out[key] = user[key]
  return out
}

const badRequest = (code: string, message: string) => new SimHttpError({ status: 400, code, message })

const filterPattern =
  /^assignedPlans\/any\(\s*(\w+)\s*:\s*\1\/servicePlanId\s+eq\s+([0-9a-fA-F-]{36})\s+and\s+\1\/capabilityStatus\s+eq\s+'(\w+)'\s*\)$/

const PresencesRequest = Schema.Struct({ ids: Schema.Array(Schema.String) })

/** What the endpoints work with: the simulator's state and the presence rate limit. */
interface Graph {
  readonly state: SimState["Service"]
  readonly options: GraphRouteOptions
}

type Request = HttpServerRequest.HttpServerRequest
type Handler = (graph: Graph, request: Request) => Effect.Effect<HttpServerResponse.HttpServerResponse, SimHttpError, HttpRouter.RouteContext>

export const GraphRoutes = (options: GraphRouteOptions) =>
  HttpRouter.use((router) =>
    Effect.gen(function*() {
      const graph: Graph = { state: yield* SimState, options }
      const route = (name: string, handler: Handler) => (request: Request) => graphRoute(graph, name, request, handler)
      yield* router.add("GET", "/v1.0/users", route("users", listUsers))
      yield* router.add("GET", "/v1.0/users/:id", route("user", getUser))
      yield* router.add("GET", "/v1.0/users/:id/presence", route("presence", getPresence))
      yield* router.add("POST", "/v1.0/communications/getPresencesByUserId", route("getPresencesByUserId", getPresencesByUserId))
    })
  )

/** Authenticates, applies faults and renders SimHttpErrors the Graph way. */
const graphRoute = (graph: Graph, route: string, request: Request, handler: Handler) => {
  const { state } = graph
  return Effect.gen(function*() {
    state.count(route)
    yield* state.authenticate(request.headers)
    yield* state.graphFaults
    return yield* handler(graph, request)
  }).pipe(Effect.catchTag("SimHttpError", (error) => state.errorResponse(error)))
}

const assignedDateTime = isoSeconds(0) + "Z"

/** `$count` and `$filter` as Graph allows them: the advanced query (ConsistencyLevel: eventual) for both. */
const filteredUsers = Effect.fnUntraced(function*({ state }: Graph, request: Request, params: URLSearchParams) {
  const advanced = Option.getOrUndefined(Headers.get(request.headers, "consistencylevel"))?.toLowerCase() === "eventual"
  const count = params.get("$count")
  if (count !== null && count !== "true" && count !== "false") {
    return yield* badRequest("Request_BadRequest", `Invalid value '${count}' for $count.`)
  }
  if (count === "true" && !advanced) return yield* badRequest("Request_BadRequest", "$count is not currently supported.")
  const users = state.listUsers()
  const filter = params.get("$filter")
  if (filter === null) return { users, count: count === "true" }
  const match = filterPattern.exec(filter.trim())
  if (match === null || !advanced || count !== "true") {
    return yield* badRequest(
      "Request_UnsupportedQuery",
      "Unsupported or invalid query filter clause specified for property 'assignedPlans' of resource 'User'."
    )
  }
  const planId = match[2]!.toLowerCase()
  const status = match[3]!.toLowerCase()
  return { users: users.filter((user) => user.teams && planId === teamsServicePlanId && status === "enabled"), count: true }
})

const listUsers = Effect.fnUntraced(function*(graph: Graph, request: Request) {
  const { state } = graph
  const url = new URL(request.url, state.baseUrl())
  const params = url.searchParams
  const top = Number(params.get("$top") ?? "100")
  if (!Number.isInteger(top) || top < 1 || top > 999) {
    return yield* badRequest("Request_BadRequest", `Invalid page size specified: '${params.get("$top")}'. Must be between 1 and 999 inclusive.`)
  }
  const { users, count } = yield* filteredUsers(graph, request, params)
  const select = params.get("$select")?.split(",").map((key) => key.trim()).filter((key) => key.length > 0)
  const skip = decodeSkipToken(params.get("$skiptoken"))
  if (skip === undefined) return yield* badRequest("Request_BadRequest", "Invalid $skiptoken.")
  const page = users.slice(skip, skip + top)
  const nextParams = new URLSearchParams(params)
  nextParams.set("$skiptoken", encodeSkipToken(skip + top))
  const body: Record<string, unknown> = {
    "@odata.context": `${state.baseUrl()}/v1.0/$metadata#users${select !== undefined ? `(${select.join(",")})` : ""}`
  }
  if (count) body["@odata.count"] = users.length
  if (skip + top < users.length) {
    body["@odata.nextLink"] = `${state.baseUrl()}/v1.0/users?${nextParams.toString().replaceAll("%24", "$")}`
  }
  body.value = page.map((user) => project(renderUser(user, assignedDateTime), select ?? defaultProperties))
  return yield* state.json(200, body)
})

const notFound = (id: string) =>
  new SimHttpError({
    status: 404,
    code: "Request_ResourceNotFound",
    message: `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`
  })

const getUser = Effect.fnUntraced(function*({ state }: Graph, request: Request) {
  const { id = "" } = yield* HttpRouter.params
  const user = state.getUser(id) ?? state.findUserByUpn(id)
  if (user === undefined) return yield* notFound(id)
  const select = new URL(request.url, state.baseUrl()).searchParams.get("$select")?.split(",").map((key) => key.trim())
  return yield* state.json(200, {
    "@odata.context": `${state.baseUrl()}/v1.0/$metadata#users/$entity`,
    ...project(renderUser(user, assignedDateTime), select ?? defaultProperties)
  })
})

const getPresence = Effect.fnUntraced(function*({ state }: Graph) {
  const { id = "" } = yield* HttpRouter.params
  const presence = state.getPresence(id)
  if (presence === undefined) return yield* notFound(id)
  return yield* state.json(200, presence)
})

const getPresencesByUserId = Effect.fnUntraced(function*({ options, state }: Graph, request: Request) {
  const principal = yield* state.authenticate(request.headers)
  const body = yield* request.json.pipe(
    Effect.flatMap(Schema.decodeUnknownEffect(PresencesRequest)),
    Effect.mapError(() => badRequest("BadRequest", "The request body must be {\"ids\":[…]} with user ids."))
  )
  if (body.ids.length > 650) {
    return yield* badRequest("BadRequest", `The number of ids (${body.ids.length}) exceeds the maximum of 650.`)
  }
  yield* state.checkPresenceRate(principal.appId, options.presenceRequestsPerWindow, options.presenceWindowSeconds * 1000)
  const value = body.ids.flatMap((id) => {
    const presence = state.getPresence(id)
    return presence === undefined ? [] : [presence]
  })
  return yield* state.json(200, { value })
})

const encodeSkipToken = (offset: number): string => `m~${Buffer.from(JSON.stringify({ o: offset })).toString("base64url")}`

const decodeSkipToken = (token: string | null): number | undefined => {
  if (token === null) return 0
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token.replace(/^m~/, ""), "base64url").toString("utf8"))
    const offset = typeof parsed === "object" && parsed !== null && "o" in parsed ? parsed.o : undefined
    return typeof offset === "number" && Number.isInteger(offset) && offset >= 0 ? offset : undefined
  } catch {
    return undefined
  }
}
