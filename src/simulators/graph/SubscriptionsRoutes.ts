/**
 * `/v1.0/subscriptions` of the Graph simulator (POST/GET/PATCH/DELETE, `/reauthorize`), the validation handshake
 * before creation, and the control API under `/_sim/subscriptions` (faults, silent stop, early expiry, lifecycle events,
 * direct delivery of chosen items).
 * `SubscriptionsExtension` is the layer GraphSimulator's `extensions` option takes.
 */
import { Effect, Exit, Layer, Schema } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { inspectCertificate } from "../../graph/notifications/crypto/RichCrypto.ts"
import { type DeliveryOptions, type DirectItem, SimDelivery } from "./SimDelivery.ts"
import { SimJwks } from "./SimJwks.ts"
import { type Principal, SimHttpError, SimState } from "./SimState.ts"
import { CreateSubscriptionBody, type SimSubscription, SimSubscriptions, UpdateSubscriptionBody } from "./SimSubscriptions.ts"

const readJson = (request: HttpServerRequest.HttpServerRequest) =>
  request.text.pipe(
    Effect.orElseSucceed(() => ""),
    Effect.flatMap((text) =>
      Effect.try({
        try: () => (text.trim() === "" ? {} : JSON.parse(text)) as unknown,
        catch: () => new SimHttpError({ status: 400, code: "BadRequest", message: "Unable to read JSON request payload." })
      })
    )
  )

const decodeBody = <S extends Schema.Decoder<unknown>>(schema: S, json: unknown) => {
  const exit = Schema.decodeUnknownExit(schema)(json)
  return Exit.isSuccess(exit)
    ? Effect.succeed(exit.value as S["Type"])
    : Effect.fail(new SimHttpError({ status: 400, code: "BadRequest", message: `Invalid request body: ${String(exit.cause)}` }))
}

const paramId = HttpRouter.params.pipe(Effect.map((p) => p["id"] ?? ""))

const ControlFaults = Schema.Struct({
  drop: Schema.optionalKey(Schema.Number),
  duplicate: Schema.optionalKey(Schema.Number),
  reorder: Schema.optionalKey(Schema.Number)
})
const ControlLifecycle = Schema.Struct({ event: Schema.Literals(["reauthorizationRequired", "subscriptionRemoved", "missed"]) })
const ControlClock = Schema.Struct({ skewSeconds: Schema.Number })
const ControlSilence = Schema.Struct({ silent: Schema.optionalKey(Schema.Boolean) })
const ControlDeliver = Schema.Struct({
  items: Schema.Array(Schema.Struct({
    userId: Schema.String,
    encryptionCertificate: Schema.optionalKey(Schema.String),
    encryptionCertificateId: Schema.optionalKey(Schema.String)
  }))
})

/** What the routes work with: the simulator's state, the subscription store and the delivery. */
interface Subscriptions {
  readonly state: SimState["Service"]
  readonly store: SimSubscriptions["Service"]
  readonly delivery: SimDelivery["Service"]
}

type Request = HttpServerRequest.HttpServerRequest
type Response = HttpServerResponse.HttpServerResponse
type Handler<R> = (subscriptions: Subscriptions, request: Request, principal: Principal) => Effect.Effect<Response, SimHttpError, R>
type ControlHandler = (subscriptions: Subscriptions, request: Request) => Effect.Effect<Response, SimHttpError, HttpRouter.RouteContext>

export const SubscriptionsRoutes = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const subscriptions: Subscriptions = { state: yield* SimState, store: yield* SimSubscriptions, delivery: yield* SimDelivery }
  const graph = <R>(route: string, handler: Handler<R>) => graphRoute(subscriptions, route, handler)
  const control = (handler: ControlHandler) => (request: Request) => controlRoute(subscriptions, request, handler)
  yield* router.add("POST", "/v1.0/subscriptions", graph("POST /subscriptions", create))
  yield* router.add("GET", "/v1.0/subscriptions", graph("GET /subscriptions", list))
  yield* router.add("GET", "/v1.0/subscriptions/:id", graph("GET /subscriptions/{id}", getOne))
  yield* router.add("PATCH", "/v1.0/subscriptions/:id", graph("PATCH /subscriptions/{id}", update))
  yield* router.add("DELETE", "/v1.0/subscriptions/:id", graph("DELETE /subscriptions/{id}", remove))
  yield* router.add("POST", "/v1.0/subscriptions/:id/reauthorize", graph("POST /subscriptions/{id}/reauthorize", reauthorize))
  yield* router.add("GET", "/_sim/subscriptions", control(overview))
  yield* router.add("POST", "/_sim/subscriptions/faults", control(setFaults))
  yield* router.add("POST", "/_sim/subscriptions/clock", control(setClock))
  yield* router.add("POST", "/_sim/subscriptions/:id/silence", control(silence))
  yield* router.add("POST", "/_sim/subscriptions/:id/expire", control(expire))
  yield* router.add("POST", "/_sim/subscriptions/:id/deliver", control(deliverItems))
  yield* router.add("POST", "/_sim/subscriptions/:id/lifecycle", control(lifecycle))
}))

/** Authenticated Graph route with the simulator's faults and Graph-shaped errors. */
const graphRoute = <R>(subscriptions: Subscriptions, route: string, handler: Handler<R>) => (request: Request) => {
  const { state } = subscriptions
  return Effect.gen(function*() {
    state.count(route)
    const principal = yield* state.authenticate(request.headers)
    yield* state.graphFaults
    return yield* handler(subscriptions, request, principal)
  }).pipe(Effect.catchTag("SimHttpError", state.errorResponse))
}

const entity = ({ state, store }: Subscriptions, subscription: SimSubscription, status: number) =>
  state.json(status, { "@odata.context": `${state.baseUrl()}/v1.0/$metadata#subscriptions/$entity`, ...store.toJson(subscription) })

/** Creation: Graph's rules, then the validation handshake with every endpoint the subscription names. */
const create = Effect.fnUntraced(function*(subscriptions: Subscriptions, request: Request, principal: Principal) {
  const { delivery, store } = subscriptions
  const body = yield* decodeBody(CreateSubscriptionBody, yield* readJson(request))
  const subscription = yield* store.prepare(principal, body)
  const urls = [subscription.notificationUrl, ...(subscription.lifecycleNotificationUrl === null ? [] : [subscription.lifecycleNotificationUrl])]
  for (const url of urls) {
    if (!(yield* delivery.validate(url))) {
      return yield* new SimHttpError({
        status: 400,
        code: "ValidationError",
        message: `Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.`
      })
    }
  }
  yield* store.store(subscription)
  return yield* entity(subscriptions, subscription, 201)
})

const list = Effect.fnUntraced(function*({ state, store }: Subscriptions, _request: Request, principal: Principal) {
  const owned = yield* store.list(principal)
  return yield* state.json(200, {
    "@odata.context": `${state.baseUrl()}/v1.0/$metadata#subscriptions`,
    value: owned.map((s) => store.toJson(s, { forList: true }))
  })
})

// Like Graph: the subscription with its clientState (the list leaves that out), 404 once deleted or expired, and
// only for the app and (delegated) user that created it (docs/protocol-notes.md).
const getOne = Effect.fnUntraced(function*(subscriptions: Subscriptions, _request: Request, principal: Principal) {
  return yield* entity(subscriptions, yield* subscriptions.store.get(principal, yield* paramId), 200)
})

const update = Effect.fnUntraced(function*({ state, store }: Subscriptions, request: Request, principal: Principal) {
  const body = yield* decodeBody(UpdateSubscriptionBody, yield* readJson(request))
  const subscription = yield* store.update(principal, yield* paramId, body)
  return yield* state.json(200, store.toJson(subscription))
})

const remove = Effect.fnUntraced(function*({ store }: Subscriptions, _request: Request, principal: Principal) {
  yield* store.remove(principal, yield* paramId)
  return HttpServerResponse.empty({ status: 204 })
})

const reauthorize = Effect.fnUntraced(function*({ store }: Subscriptions, _request: Request, principal: Principal) {
  yield* store.reauthorize(principal, yield* paramId)
  return HttpServerResponse.empty({ status: 204 })
})

// ---- control API -------------------------------------------------------------------------------------------------

const controlRoute = (subscriptions: Subscriptions, request: Request, handler: ControlHandler) =>
  handler(subscriptions, request).pipe(
    Effect.catchTag("SimHttpError", (error) => Effect.succeed(HttpServerResponse.jsonUnsafe({ error: error.message }, { status: error.status })))
  )

/** The live subscription the path names, whoever owns it. */
const withSubscription = Effect.fnUntraced(function*({ store }: Subscriptions) {
  const id = yield* paramId
  const subscription = yield* store.find(id)
  if (subscription === undefined) return yield* new SimHttpError({ status: 404, code: "NotFound", message: `no live subscription ${id}` })
  return subscription
})

const overview = Effect.fnUntraced(function*({ delivery, store }: Subscriptions) {
  const live = yield* store.live
  return HttpServerResponse.jsonUnsafe({
    subscriptions: live.map((s) => ({ ...store.toJson(s), kind: s.kind, userCount: s.userIds.size, silent: s.silent })),
    counters: { ...store.counters(), live: live.length },
    delivery: delivery.counters(),
    endpoints: delivery.endpoints(),
    faults: delivery.faults
  })
})

const setFaults = Effect.fnUntraced(function*({ delivery }: Subscriptions, request: Request) {
  const body = yield* decodeBody(ControlFaults, yield* readJson(request))
  if (body.drop !== undefined) delivery.faults.drop = body.drop
  if (body.duplicate !== undefined) delivery.faults.duplicate = body.duplicate
  if (body.reorder !== undefined) delivery.faults.reorder = body.reorder
  return HttpServerResponse.jsonUnsafe(delivery.faults)
})

// Graph's clock against this machine's: a skew makes a request for exactly the maximum expiry fail, as it can for real.
const setClock = Effect.fnUntraced(function*({ store }: Subscriptions, request: Request) {
  const body = yield* decodeBody(ControlClock, yield* readJson(request))
  store.clockSkewMillis = Math.round(body.skewSeconds * 1000)
  return HttpServerResponse.jsonUnsafe({ skewSeconds: store.clockSkewMillis / 1000 })
})

const silence = Effect.fnUntraced(function*(subscriptions: Subscriptions, request: Request) {
  const subscription = yield* withSubscription(subscriptions)
  const body = yield* decodeBody(ControlSilence, yield* readJson(request))
  subscription.silent = body.silent ?? true
  return HttpServerResponse.jsonUnsafe({ id: subscription.id, silent: subscription.silent })
})

const expire = Effect.fnUntraced(function*(subscriptions: Subscriptions) {
  const subscription = yield* withSubscription(subscriptions)
  yield* subscriptions.store.expireNow(subscription.id)
  return HttpServerResponse.jsonUnsafe({ id: subscription.id, expired: true })
})

/** One item of a direct delivery: the user's current presence, sealed with the certificate the item names, if any. */
const directItem = Effect.fnUntraced(function*(
  { state }: Subscriptions,
  subscription: SimSubscription,
  item: typeof ControlDeliver.Type["items"][number]
) {
  const presence = state.getPresence(item.userId)
  if (presence === undefined || !subscription.userIds.has(item.userId.toLowerCase())) {
    return yield* new SimHttpError({ status: 400, code: "BadRequest", message: `user ${item.userId} is not subscribed by ${subscription.id}` })
  }
  if ((item.encryptionCertificate === undefined) !== (item.encryptionCertificateId === undefined)) {
    return yield* new SimHttpError({ status: 400, code: "BadRequest", message: "encryptionCertificate and encryptionCertificateId go together" })
  }
  if (item.encryptionCertificate !== undefined) {
    const certificate = item.encryptionCertificate
    yield* Effect.try({
      try: () => inspectCertificate(certificate),
      catch: () => new SimHttpError({ status: 400, code: "BadRequest", message: "encryptionCertificate is not a base64 DER X.509 certificate" })
    })
  }
  return {
    presence,
    ...(item.encryptionCertificate !== undefined && item.encryptionCertificateId !== undefined
      ? { sealedWith: { encryptionCertificate: item.encryptionCertificate, encryptionCertificateId: item.encryptionCertificateId } }
      : {})
  } satisfies DirectItem
})

// Delivers the users' current presences for this subscription now; an item may name the certificate it is sealed
// with (a retry of a notification encrypted before the subscription's certificate was changed).
const deliverItems = Effect.fnUntraced(function*(subscriptions: Subscriptions, request: Request) {
  const subscription = yield* withSubscription(subscriptions)
  const body = yield* decodeBody(ControlDeliver, yield* readJson(request))
  const items: Array<DirectItem> = []
  for (const item of body.items) items.push(yield* directItem(subscriptions, subscription, item))
  const delivered = yield* subscriptions.delivery.deliverNow(subscription, items)
  return HttpServerResponse.jsonUnsafe({ id: subscription.id, items: items.length, delivered })
})

const lifecycle = Effect.fnUntraced(function*(subscriptions: Subscriptions, request: Request) {
  const subscription = yield* withSubscription(subscriptions)
  const body = yield* decodeBody(ControlLifecycle, yield* readJson(request))
  // Graph removes the subscription before it says so.
  if (body.event === "subscriptionRemoved") yield* subscriptions.store.expireNow(subscription.id)
  const sent = yield* subscriptions.delivery.sendLifecycle(subscription, body.event)
  return HttpServerResponse.jsonUnsafe({ id: subscription.id, event: body.event, sent })
})

/**
 * Everything this module adds to the Graph simulator (pass it in GraphSimulator's `extensions`): the subscription
 * routes, delivery (its validation tokens signed with the simulator's published key) and the control API. Its state is
 * reached through the control API.
 */
export const SubscriptionsExtension = (options: Partial<DeliveryOptions> = {}): Layer.Layer<never, never, HttpRouter.HttpRouter | SimState> =>
  SubscriptionsRoutes.pipe(
    Layer.provide(SimDelivery.layerWith(options)),
    Layer.provide(SimSubscriptions.layer),
    Layer.provide(SimJwks.layerSimulator)
  )
