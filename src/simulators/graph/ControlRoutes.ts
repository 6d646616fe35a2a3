/**
 * The simulator's control API under `/_sim` (documented in docs/simulator-graph.md): users and licences, presences,
 * device-code approval, faults and counters. The same operations are on the programmatic handle.
 */
import { Clock, Effect, Option, Schema } from "effect"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { type SimFaults, SimState } from "./SimState.ts"

/** What a user may be patched with; creating one needs a displayName and may choose its id. */
const userFields = {
  displayName: Schema.optionalKey(Schema.String),
  userPrincipalName: Schema.optionalKey(Schema.String),
  mail: Schema.optionalKey(Schema.NullOr(Schema.String)),
  otherMails: Schema.optionalKey(Schema.Array(Schema.String)),
  accountEnabled: Schema.optionalKey(Schema.Boolean),
  teams: Schema.optionalKey(Schema.Boolean),
  password: Schema.optionalKey(Schema.String),
  mfa: Schema.optionalKey(Schema.Boolean)
}
const UserPatch = Schema.Struct(userFields)
const UserInput = Schema.Struct({ ...userFields, id: Schema.optionalKey(Schema.String), displayName: Schema.String })
const PresenceInput = Schema.Struct({
  availability: Schema.String,
  activity: Schema.String,
  statusMessage: Schema.optionalKey(Schema.NullOr(Schema.Struct({
    content: Schema.String,
    expiryDateTime: Schema.optionalKey(Schema.String)
  })))
})
const Preferred = Schema.Struct({ availability: Schema.String, activity: Schema.String, expiresInMillis: Schema.optionalKey(Schema.Number) })
const Approve = Schema.Struct({ upn: Schema.String })
const Throttle = Schema.Struct({ count: Schema.Number, retryAfterSeconds: Schema.Number })
const ServerErrors = Schema.Struct({ count: Schema.Number, status: Schema.optionalKey(Schema.Number) })
const Latency = Schema.Struct({ millis: Schema.Number })
const Outage = Schema.Struct({ enabled: Schema.Boolean })
const Licence = Schema.Struct({ enabled: Schema.Boolean })

const missing = HttpServerResponse.jsonUnsafe({ error: "not found" }, { status: 404 })
const ok = (value: unknown) => HttpServerResponse.jsonUnsafe(value)
const param = (name: string) => HttpRouter.params.pipe(Effect.map((params) => params[name] ?? ""))
/** Looks up what the path parameter `name` names: found is answered 200 with it, none 404. */
const lookup = <A>(name: string, find: (value: string) => Effect.Effect<Option.Option<A>>) =>
  param(name).pipe(Effect.flatMap(find), Effect.map((value) => (Option.isSome(value) ? ok(value.value) : missing)))

type Handler = Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpRouter.RouteContext>

/** Decodes the JSON body with `schema`; a body that is no JSON or does not match is answered 400 with the reason. */
const withBody = <S extends Schema.Decoder<unknown>>(schema: S, handle: (value: S["Type"]) => Handler) =>
(request: HttpServerRequest.HttpServerRequest) =>
  request.json.pipe(
    Effect.mapError(() => "the body is not JSON"),
    Effect.flatMap((json) => Schema.decodeUnknownEffect(schema)(json).pipe(Effect.mapError((error) => error.message))),
    Effect.matchEffect({
      onFailure: (reason) => Effect.succeed(HttpServerResponse.jsonUnsafe({ error: "invalid body", reason }, { status: 400 })),
      onSuccess: handle
    })
  )

export const ControlRoutes = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const state = yield* SimState
    /** Changes the faults in place (the routes read them per request) and answers all of them. */
    const setFault = <S extends Schema.Decoder<unknown>>(schema: S, apply: (input: S["Type"], faults: SimFaults) => void) =>
      withBody(schema, (input) =>
        Effect.sync(() => {
          apply(input, state.faults)
          return ok(state.faults)
        }))

    yield* router.add("GET", "/_sim/users", Effect.sync(() => ok(state.listUsers())))
    yield* router.add("POST", "/_sim/users", withBody(UserInput, (input) => state.addUser(input).pipe(Effect.map(ok))))
    yield* router.add("PATCH", "/_sim/users/:id", withBody(UserPatch, (patch) => lookup("id", (id) => state.updateUser(id, patch))))
    yield* router.add(
      "DELETE",
      "/_sim/users/:id",
      param("id").pipe(
        Effect.flatMap(state.removeUser),
        Effect.map((removed) => (removed ? HttpServerResponse.empty({ status: 204 }) : missing))
      )
    )
    yield* router.add(
      "PUT",
      "/_sim/users/:id/teams",
      withBody(Licence, (input) => lookup("id", (id) => state.updateUser(id, { teams: input.enabled })))
    )
    yield* router.add("PUT", "/_sim/presences/:id", withBody(PresenceInput, (input) => lookup("id", (id) => state.setPresence(id, input))))
    // A status the user picks by hand in Teams: it wins over every session (docs/simulator-graph.md).
    yield* router.add("PUT", "/_sim/presences/:id/preferred", withBody(Preferred, (input) =>
      param("id").pipe(
        Effect.flatMap((id) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            state.setPreferred(id, { availability: input.availability, activity: input.activity, expiresAt: now + (input.expiresInMillis ?? 24 * 3600_000) }))
        ),
        Effect.map((found) => (found ? ok({ preferred: input }) : missing))
      )))
    yield* router.add("DELETE", "/_sim/presences/:id/preferred", param("id").pipe(
      Effect.flatMap((id) => state.setPreferred(id, undefined)),
      Effect.map((found) => (found ? HttpServerResponse.empty({ status: 204 }) : missing))
    ))
    yield* router.add("GET", "/_sim/presences/:id/sessions", param("id").pipe(Effect.map((id) => {
      const inputs = state.presenceInputs(id)
      return inputs === undefined ? missing : ok({ ...inputs, sessions: Object.fromEntries(inputs.sessions) })
    })))
    yield* router.add("GET", "/_sim/sessions/log", Effect.sync(() => ok(state.sessionLog)))
    yield* router.add(
      "POST",
      "/_sim/devicecodes/:userCode/approve",
      withBody(Approve, (input) =>
        param("userCode").pipe(
          Effect.flatMap((userCode) => state.approveDeviceCode(userCode, input.upn)),
          Effect.map((approved) => (approved ? ok({ approved: true }) : missing))
        ))
    )
    yield* router.add("POST", "/_sim/faults/throttle", setFault(Throttle, (input, faults) => {
      faults.throttle = { count: input.count, retryAfterSeconds: input.retryAfterSeconds }
    }))
    yield* router.add("POST", "/_sim/faults/server-errors", setFault(ServerErrors, (input, faults) => {
      faults.serverErrors = { count: input.count, status: input.status ?? 503 }
    }))
    yield* router.add("PUT", "/_sim/faults/latency", setFault(Latency, (input, faults) => {
      faults.latencyMillis = input.millis
    }))
    yield* router.add("PUT", "/_sim/faults/token-outage", setFault(Outage, (input, faults) => {
      faults.tokenOutage = input.enabled
    }))
    yield* router.add("DELETE", "/_sim/faults", Effect.sync(() => {
      state.clearFaults()
      return ok(state.faults)
    }))
    yield* router.add("POST", "/_sim/tokens/expire", Effect.sync(() => {
      state.expireAllTokens()
      return HttpServerResponse.empty({ status: 204 })
    }))
    yield* router.add("GET", "/_sim/counters", Effect.sync(() => ok(state.counters())))
  })
)
