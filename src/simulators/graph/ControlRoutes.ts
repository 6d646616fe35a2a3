/**
 * The simulator's control API under `/_sim` (documented in docs/simulator-graph.md): users and licences, presences,
 * device-code approval, faults and counters. The same operations are on the programmatic handle.
 */
import { Effect, Option, Schema } from "effect"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { SimState } from "./SimState.ts"

const UserInput = Schema.Struct({
  id: Schema.optionalKey(Schema.String),
  displayName: Schema.String,
  userPrincipalName: Schema.optionalKey(Schema.String),
  mail: Schema.optionalKey(Schema.NullOr(Schema.String)),
  otherMails: Schema.optionalKey(Schema.Array(Schema.String)),
  accountEnabled: Schema.optionalKey(Schema.Boolean),
  teams: Schema.optionalKey(Schema.Boolean),
  password: Schema.optionalKey(Schema.String),
  mfa: Schema.optionalKey(Schema.Boolean)
})
const UserPatch = Schema.Struct({
  displayName: Schema.optionalKey(Schema.String),
  userPrincipalName: Schema.optionalKey(Schema.String),
  mail: Schema.optionalKey(Schema.NullOr(Schema.String)),
  otherMails: Schema.optionalKey(Schema.Array(Schema.String)),
  accountEnabled: Schema.optionalKey(Schema.Boolean),
  teams: Schema.optionalKey(Schema.Boolean),
  password: Schema.optionalKey(Schema.String),
  mfa: Schema.optionalKey(Schema.Boolean)
})
const PresenceInput = Schema.Struct({
  availability: Schema.String,
  activity: Schema.String,
  statusMessage: Schema.optionalKey(Schema.NullOr(Schema.Struct({
    content: Schema.String,
    expiryDateTime: Schema.optionalKey(Schema.String)
  })))
})
const Approve = Schema.Struct({ upn: Schema.String })
const Throttle = Schema.Struct({ count: Schema.Number, retryAfterSeconds: Schema.Number })
const ServerErrors = Schema.Struct({ count: Schema.Number, status: Schema.optionalKey(Schema.Number) })
const Latency = Schema.Struct({ millis: Schema.Number })
const Outage = Schema.Struct({ enabled: Schema.Boolean })
const Licence = Schema.Struct({ enabled: Schema.Boolean })

const body = <S extends Schema.Decoder<unknown>>(request: HttpServerRequest.HttpServerRequest, schema: S) =>
  request.json.pipe(Effect.flatMap(Schema.decodeUnknownEffect(schema)), Effect.option)

const invalid = HttpServerResponse.jsonUnsafe({ error: "invalid body" }, { status: 400 })
const missing = HttpServerResponse.jsonUnsafe({ error: "not found" }, { status: 404 })
const ok = (value: unknown) => HttpServerResponse.jsonUnsafe(value)

export const ControlRoutes = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const state = yield* SimState
    const withBody = <S extends Schema.Decoder<unknown>>(
      schema: S,
      handle: (value: S["Type"]) => Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpRouter.RouteContext>
    ) =>
    (request: HttpServerRequest.HttpServerRequest) =>
      body(request, schema).pipe(Effect.flatMap((value) => Option.isSome(value) ? handle(value.value) : Effect.succeed(invalid)))

    yield* router.add("GET", "/_sim/users", Effect.sync(() => ok(state.listUsers())))
    yield* router.add("POST", "/_sim/users", withBody(UserInput, (input) => state.addUser(input).pipe(Effect.map(ok))))
    yield* router.add(
      "PATCH",
      "/_sim/users/:id",
      withBody(UserPatch, (patch) =>
        Effect.gen(function*() {
          const { id = "" } = yield* HttpRouter.params
          const user = yield* state.updateUser(id, patch)
          return Option.isSome(user) ? ok(user.value) : missing
        }))
    )
    yield* router.add(
      "DELETE",
      "/_sim/users/:id",
      Effect.gen(function*() {
        const { id = "" } = yield* HttpRouter.params
        return (yield* state.removeUser(id)) ? HttpServerResponse.empty({ status: 204 }) : missing
      })
    )
    yield* router.add(
      "PUT",
      "/_sim/users/:id/teams",
      withBody(Licence, (input) =>
        Effect.gen(function*() {
          const { id = "" } = yield* HttpRouter.params
          const user = yield* state.updateUser(id, { teams: input.enabled })
          return Option.isSome(user) ? ok(user.value) : missing
        }))
    )
    yield* router.add(
      "PUT",
      "/_sim/presences/:id",
      withBody(PresenceInput, (input) =>
        Effect.gen(function*() {
          const { id = "" } = yield* HttpRouter.params
          const presence = yield* state.setPresence(id, input)
          return Option.isSome(presence) ? ok(presence.value) : missing
        }))
    )
    yield* router.add(
      "POST",
      "/_sim/devicecodes/:userCode/approve",
      withBody(Approve, (input) =>
        Effect.gen(function*() {
          const { userCode = "" } = yield* HttpRouter.params
          return (yield* state.approveDeviceCode(userCode, input.upn)) ? ok({ approved: true }) : missing
        }))
    )
    yield* router.add(
      "POST",
      "/_sim/faults/throttle",
      withBody(Throttle, (input) =>
        Effect.sync(() => {
          state.faults.throttle = { count: input.count, retryAfterSeconds: input.retryAfterSeconds }
          return ok(state.faults)
        }))
    )
    yield* router.add(
      "POST",
      "/_sim/faults/server-errors",
      withBody(ServerErrors, (input) =>
        Effect.sync(() => {
          state.faults.serverErrors = { count: input.count, status: input.status ?? 503 }
          return ok(state.faults)
        }))
    )
    yield* router.add(
      "PUT",
      "/_sim/faults/latency",
      withBody(Latency, (input) =>
        Effect.sync(() => {
          state.faults.latencyMillis = input.millis
          return ok(state.faults)
        }))
    )
    yield* router.add(
      "PUT",
      "/_sim/faults/token-outage",
      withBody(Outage, (input) =>
        Effect.sync(() => {
          state.faults.tokenOutage = input.enabled
          return ok(state.faults)
        }))
    )
    yield* router.add(
      "DELETE",
      "/_sim/faults",
      Effect.sync(() => {
        state.clearFaults()
        return ok(state.faults)
      })
    )
    yield* router.add(
      "POST",
      "/_sim/tokens/expire",
      Effect.sync(() => {
        state.expireAllTokens()
        return HttpServerResponse.empty({ status: 204 })
      })
    )
    yield* router.add("GET", "/_sim/counters", Effect.sync(() => ok(state.counters())))
  })
)
