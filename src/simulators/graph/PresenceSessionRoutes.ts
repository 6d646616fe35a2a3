/**
 * Graph's presence writes (docs/protocol-notes.md, "PBX → Teams"): `POST /v1.0/users/{id}/presence/setPresence`
 * (an application's session: the documented availability/activity pairs only, expirationDuration PT5M–PT4H, the
 * application's id as sessionId), `clearPresence` (404 when the session does not exist), `setUserPreferredPresence`
 * and `clearUserPreferredPresence`. They count against the same presence limit as the reads. Every write is recorded
 * (the log and a stream of them) for tests and the control API.
 */
import { Clock, Effect, PubSub, Schema } from "effect"
import { HttpRouter, type HttpServerRequest } from "effect/http"
import {
  findPair,
  parseDuration,
  preferredDefaultMillis,
  preferredPairs,
  sessionExpiryRange,
  sessionPairs
} from "./SimPresenceSessions.ts"
import type { SessionCall } from "./SimSessionLog.ts"
import { SimHttpError, SimState } from "./SimState.ts"

export interface PresenceSessionOptions {
  readonly presenceRequestsPerWindow: number
  readonly presenceWindowSeconds: number
}

const SetPresenceBody = Schema.Struct({
  sessionId: Schema.String,
  availability: Schema.String,
  activity: Schema.String,
  expirationDuration: Schema.optionalKey(Schema.String)
})
const ClearPresenceBody = Schema.Struct({ sessionId: Schema.String })
const PreferredBody = Schema.Struct({
  availability: Schema.String,
  activity: Schema.String,
  expirationDuration: Schema.optionalKey(Schema.String)
})

const invalid = (message: string) => new SimHttpError({ status: 400, code: "InvalidArgument", message })
const pairsText = (pairs: ReadonlyArray<readonly [string, string]>) => pairs.map(([a, b]) => `${a}/${b}`).join(", ")

type State = SimState["Service"]
type Details = Omit<SessionCall, "at" | "status" | "operation" | "userId" | "appId">
type Handler<A> = (state: State, userId: string, appId: string, body: A) => Effect.Effect<Details, SimHttpError>

const record = Effect.fnUntraced(function*(state: State, call: Omit<SessionCall, "at">) {
  const entry = { ...call, at: yield* Clock.currentTimeMillis }
  state.sessionLog.push(entry)
  yield* PubSub.publish(state.sessionCalls, entry)
})

/** A route: authenticates, applies faults and the shared presence limit, decodes the body; records the answer. */
const write = <S extends Schema.Decoder<unknown>>(
  state: State,
  options: PresenceSessionOptions,
  operation: SessionCall["operation"],
  schema: S,
  handle: Handler<S["Type"]>
) =>
(request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function*() {
    state.count(operation)
    const { id = "" } = yield* HttpRouter.params
    const principal = yield* state.authenticate(request.headers)
    const base = { operation, userId: id, appId: principal.appId }
    return yield* Effect.gen(function*() {
      yield* state.graphFaults
      yield* state.checkPresenceRate(principal.appId, options.presenceRequestsPerWindow, options.presenceWindowSeconds * 1000)
      // clearUserPreferredPresence has no body.
      const json = (schema as unknown) === Schema.Unknown ? request.json.pipe(Effect.orElseSucceed(() => ({}))) : request.json
      const body = yield* json.pipe(
        Effect.flatMap(Schema.decodeUnknownEffect(schema)),
        Effect.mapError(() => new SimHttpError({ status: 400, code: "BadRequest", message: `The request body of ${operation} is not valid.` }))
      )
      if (state.getUser(id) === undefined) {
        return yield* new SimHttpError({ status: 404, code: "NotFound", message: `The user ${id} was not found.` })
      }
      const details = yield* handle(state, id, principal.appId, body)
      yield* record(state, { ...base, ...details, status: 200 })
      return yield* state.json(200, null)
    }).pipe(Effect.tapError((error) => record(state, { ...base, status: error.status })))
  }).pipe(Effect.catchTag("SimHttpError", (error) => state.errorResponse(error)))

const setPresence: Handler<typeof SetPresenceBody.Type> = (state, userId, appId, body) =>
  Effect.gen(function*() {
    const pair = findPair(sessionPairs, body.availability, body.activity)
    if (pair === undefined) {
      return yield* invalid(`The combination of availability '${body.availability}' and activity '${body.activity}' is not supported; use one of ${pairsText(sessionPairs)}.`)
    }
    // The docs ask for the application's id as the session id (presence-setpresence.md, "Important").
    if (body.sessionId.toLowerCase() !== appId.toLowerCase()) {
      return yield* invalid(`The sessionId '${body.sessionId}' is not the id of the calling application.`)
    }
    const duration = body.expirationDuration === undefined ? sessionExpiryRange.defaultMillis : parseDuration(body.expirationDuration)
    if (duration === undefined || duration < sessionExpiryRange.minMillis || duration > sessionExpiryRange.maxMillis) {
      return yield* invalid("The provided [ExpirationDuration] is out of range.")
    }
    const now = yield* Clock.currentTimeMillis
    yield* state.setSession(userId, body.sessionId.toLowerCase(), { availability: pair[0], activity: pair[1], setAt: now, expiresAt: now + duration })
    return { sessionId: body.sessionId, availability: pair[0], activity: pair[1], expirationDuration: body.expirationDuration }
  })

const clearPresence: Handler<typeof ClearPresenceBody.Type> = (state, userId, _appId, body) =>
  Effect.gen(function*() {
    const outcome = yield* state.clearSession(userId, body.sessionId.toLowerCase())
    if (outcome !== "cleared") {
      return yield* new SimHttpError({ status: 404, code: "NotFound", message: `No presence session '${body.sessionId}' exists for the user.` })
    }
    return { sessionId: body.sessionId }
  })

const setPreferred: Handler<typeof PreferredBody.Type> = (state, userId, _appId, body) =>
  Effect.gen(function*() {
    const pair = findPair(preferredPairs, body.availability, body.activity)
    if (pair === undefined) {
      return yield* invalid(`The combination of availability '${body.availability}' and activity '${body.activity}' is not supported; use one of ${pairsText(preferredPairs)}.`)
    }
    const duration = body.expirationDuration === undefined ? preferredDefaultMillis(pair[0]) : parseDuration(body.expirationDuration)
    if (duration === undefined || duration <= 0) return yield* invalid("The provided [ExpirationDuration] is not valid.")
    const now = yield* Clock.currentTimeMillis
    yield* state.setPreferred(userId, { availability: pair[0], activity: pair[1], expiresAt: now + duration })
    return { availability: pair[0], activity: pair[1], expirationDuration: body.expirationDuration }
  })

const clearPreferred: Handler<unknown> = (state, userId) => Effect.as(state.setPreferred(userId, undefined), {})

export const PresenceSessionRoutes = (options: PresenceSessionOptions) =>
  HttpRouter.use((router) =>
    Effect.gen(function*() {
      const state = yield* SimState
      yield* router.add("POST", "/v1.0/users/:id/presence/setPresence", write(state, options, "setPresence", SetPresenceBody, setPresence))
      yield* router.add("POST", "/v1.0/users/:id/presence/clearPresence", write(state, options, "clearPresence", ClearPresenceBody, clearPresence))
      yield* router.add(
        "POST",
        "/v1.0/users/:id/presence/setUserPreferredPresence",
        write(state, options, "setUserPreferredPresence", PreferredBody, setPreferred)
      )
      yield* router.add(
        "POST",
        "/v1.0/users/:id/presence/clearUserPreferredPresence",
        write(state, options, "clearUserPreferredPresence", Schema.Unknown, clearPreferred)
      )
    })
  )

/** Re-evaluates every user's sessions each second of the Clock: expired sessions end, Available sessions fade. */
export const expireSessionsEverySecond = Effect.gen(function*() {
  const state = yield* SimState
  while (true) {
    yield* Effect.sleep(1000)
    yield* state.expireSessions
  }
})
