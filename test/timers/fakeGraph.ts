/**
 * A fake identity platform and Graph subscriptions endpoint behind an HttpClient, answering synchronously (no sockets,
 * no promises), so that TestClock alone drives renewals, token expiry and retry backoff through the real
 * SubscriptionApi → GraphClient → TokenService stack. Every call is logged with its simulated time.
 */
import { Clock, Effect, Layer, Redacted, Stream } from "effect"
import { HttpClient, type HttpClientRequest, HttpClientResponse } from "effect/http"
import { CertificateStore } from "../../src/graph/notifications/crypto/CertificateStore.ts"
import { DecryptPool } from "../../src/graph/notifications/crypto/DecryptPool.ts"
import { GraphClient } from "../../src/graph/client/GraphClient.ts"
import { GraphConfig } from "../../src/graph/client/GraphSettings.ts"
import { NotificationsInbox } from "../../src/graph/notifications/NotificationsInbox.ts"
import { fileState } from "../support/state.ts"
import { SubscriptionApi } from "../../src/graph/subscriptions/SubscriptionApi.ts"
import { TokenService } from "../../src/graph/auth/TokenService.ts"

export interface GraphCall {
  readonly kind: "graph"
  readonly method: string
  readonly path: string
  /** Simulated milliseconds. */
  readonly at: number
  /** "app" or "account:<name>", from the bearer token. */
  readonly credential: string
  readonly subscription: "presence" | "users" | undefined
  /** The resource of a created subscription. */
  readonly resource: string | undefined
  readonly status: number
  /** The bearer token was issued by the fake identity platform and had not expired. */
  readonly tokenValid: boolean
}

export interface LicenceCall {
  readonly kind: "licence"
  readonly at: number
}

export type LogEntry = GraphCall | LicenceCall

export interface TokenIssue {
  readonly credential: string
  readonly at: number
  readonly expiresAt: number
}

export interface FakeGraphOptions {
  readonly tokenLifetimeSeconds: number
  /** An HTTP status every Graph call made with this credential is answered with (e.g. 500), or undefined for success. */
  readonly failFor?: (credential: string) => number | undefined
}

const decoder = new TextDecoder()

const bodyText = (request: HttpClientRequest.HttpClientRequest): string =>
  request.body._tag === "Uint8Array" ? decoder.decode(request.body.body) : ""

/** An HttpClientResponse whose body is already in memory: reading it never leaves the fiber for a promise. */
const respond = (request: HttpClientRequest.HttpClientRequest, status: number, body?: unknown) => {
  const text = body === undefined ? "" : JSON.stringify(body)
  const headers: Record<string, string> = body === undefined ? {} : { "content-type": "application/json" }
  const base = HttpClientResponse.fromWeb(request, new Response(null, { status, headers }))
  const bytes = new TextEncoder().encode(text)
  return Object.create(base, {
    text: { value: Effect.succeed(text) },
    json: { value: Effect.succeed(text === "" ? null : JSON.parse(text)) },
    arrayBuffer: { value: Effect.succeed(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) }
  }) as HttpClientResponse.HttpClientResponse
}

const graphError = (status: number) => ({
  error: { code: status === 403 ? "Forbidden" : status === 404 ? "ResourceNotFound" : "InternalServerError", message: `fake HTTP ${status}` }
})

export const makeFakeGraph = (options: FakeGraphOptions) => {
  const log: Array<LogEntry> = []
  const tokensIssued: Array<TokenIssue> = []
  const tokens = new Map<string, TokenIssue>()
  const subscriptions = new Map<string, { resource: string; kind: "presence" | "users" }>()
  const waiters = new Set<() => void>()
  let nextSubscription = 0

  const push = (entry: LogEntry) => {
    log.push(entry)
    for (const check of [...waiters]) check()
  }

  /** Waits (no timeout, no sleep) until `predicate` holds for the log. */
  const until = (predicate: () => boolean) =>
    Effect.callback<void>((resume) => {
      if (predicate()) return resume(Effect.void)
      const check = () => {
        if (!predicate()) return
        waiters.delete(check)
        resume(Effect.void)
      }
      waiters.add(check)
      return Effect.sync(() => void waiters.delete(check))
    })

  const tokenEndpoint = (request: HttpClientRequest.HttpClientRequest, now: number) => {
    const form = new URLSearchParams(bodyText(request))
    const credential = form.get("grant_type") === "client_credentials"
      ? "app"
      : `account:${(form.get("username") ?? "unknown").split("@")[0]}`
    const issue: TokenIssue = { credential, at: now, expiresAt: now + options.tokenLifetimeSeconds * 1000 }
    const token = `tok-${tokensIssued.length + 1}`
    tokensIssued.push(issue)
    tokens.set(token, issue)
    return respond(request, 200, {
      token_type: "Bearer",
      expires_in: options.tokenLifetimeSeconds,
      ext_expires_in: options.tokenLifetimeSeconds,
      access_token: token
    })
  }

  const graphEndpoint = (request: HttpClientRequest.HttpClientRequest, url: URL, now: number) => {
    const bearer = (request.headers["authorization"] ?? "").replace(/^Bearer /, "")
    const issue = tokens.get(bearer)
    const tokenValid = issue !== undefined && now < issue.expiresAt
    const credential = issue?.credential ?? "unknown"
    const path = url.pathname
    const id = path.startsWith("/v1.0/subscriptions/") ? decodeURIComponent(path.slice("/v1.0/subscriptions/".length)) : undefined
    const body = request.method === "POST" || request.method === "PATCH" ? JSON.parse(bodyText(request) || "{}") : {}
    const known = id === undefined ? undefined : subscriptions.get(id)
    const resource: string | undefined = request.method === "POST" && id === undefined ? body.resource : undefined
    const kind = resource !== undefined ? (resource === "/users" ? "users" : "presence") : known?.kind

    const answer = (): [number, unknown] => {
      if (!tokenValid) return [401, { error: { code: "InvalidAuthenticationToken", message: "expired or unknown token" } }]
      const failure = options.failFor?.(credential)
      if (failure !== undefined) return [failure, graphError(failure)]
      if (path === "/v1.0/subscriptions" && request.method === "GET") return [200, { value: [] }]
      if (path === "/v1.0/subscriptions" && request.method === "POST") {
        const created = `sub-${++nextSubscription}`
        subscriptions.set(created, { resource: body.resource, kind: kind ?? "presence" })
        return [201, { id: created, resource: body.resource, expirationDateTime: body.expirationDateTime }]
      }
      if (known === undefined || id === undefined) return [404, graphError(404)]
      if (request.method === "GET") return [200, { id, resource: known.resource, expirationDateTime: "2100-01-01T00:00:00Z" }]
      if (request.method === "PATCH") return [200, { id, resource: known.resource, expirationDateTime: body.expirationDateTime }]
      if (request.method === "DELETE") {
        subscriptions.delete(id)
        return [204, undefined]
      }
      return [404, graphError(404)]
    }
    const [status, payload] = answer()
    push({ kind: "graph", method: request.method, path, at: now, credential, subscription: kind, resource, status, tokenValid })
    return respond(request, status, payload)
  }

  const client = HttpClient.make((request, url) =>
    Effect.map(Clock.currentTimeMillis, (now) =>
      url.pathname.endsWith("/oauth2/v2.0/token") ? tokenEndpoint(request, now) : graphEndpoint(request, url, now)
    )
  )

  const licenceCalled = Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.sync(() => push({ kind: "licence", at })))

  return {
    log,
    tokensIssued,
    /** The live subscription ids; `vanish` deletes one as Graph would (expiry, an administrator), without a call. */
    subscriptionIds: (kind?: "presence" | "users") =>
      [...subscriptions].filter(([, s]) => kind === undefined || s.kind === kind).map(([id]) => id),
    vanish: (id: string) => void subscriptions.delete(id),
    until,
    licenceCalled,
    graphCalls: () => log.filter((entry): entry is GraphCall => entry.kind === "graph"),
    httpLayer: Layer.succeed(HttpClient.HttpClient, client)
  }
}

export type FakeGraph = ReturnType<typeof makeFakeGraph>

export const graphConfig = (accounts: ReadonlyArray<string>) =>
  Layer.succeed(GraphConfig, {
    tenantId: "t",
    clientId: "c",
    loginBaseUrl: "https://login.example",
    graphBaseUrl: "https://graph.example",
    app: { _tag: "ClientSecret", secret: Redacted.make("app-secret") },
    accounts: accounts.map((name) => ({
      name,
      username: `${name}@contoso.com`,
      flow: "password" as const,
      password: Redacted.make(`pw-${name}`)
    })),
    refreshAheadSeconds: 300
  })

/**
 * The real Graph stack (SubscriptionApi → GraphClient → TokenService) over the fake's HttpClient, with tenant
 * `default`'s state (refresh tokens, subscriptions) in the files of `dataDir`.
 */
export const graphStack = (fake: FakeGraph, accounts: ReadonlyArray<string>, dataDir: string) =>
  SubscriptionApi.layer.pipe(
    Layer.provideMerge(GraphClient.layer),
    Layer.provideMerge(TokenService.layer),
    Layer.provide(fake.httpLayer),
    Layer.provideMerge(Layer.merge(graphConfig(accounts), Layer.orDie(fileState(dataDir))))
  )

/** The manager's webhook-side collaborators, inert: no notifications arrive, no encryption is used. */
export const inertWebhook = Layer.mergeAll(
  Layer.succeed(NotificationsInbox, NotificationsInbox.of({
    register: () => Effect.void,
    unregister: () => Effect.void,
    expect: () => Effect.succeed(Effect.void),
    acceptNotifications: () => Effect.succeed(0),
    acceptLifecycle: () => Effect.succeed(0),
    presences: Stream.never,
    consumePresences: () => Effect.void,
    userChanges: Stream.never,
    lifecycle: Stream.never,
    refetch: Stream.never
  })),
  Layer.succeed(CertificateStore, CertificateStore.of({
    current: Effect.die("not used when includeResourceData is false"),
    keys: Effect.succeed([]),
    rotate: Effect.die("not used when includeResourceData is false"),
    retire: () => Effect.void,
    problem: undefined
  })),
  Layer.succeed(DecryptPool, DecryptPool.of({ decrypt: () => Effect.succeed([]), post: (_items, answered) => (answered([]), () => {}), reloadKeys: Effect.void, size: 0, itemMicros: () => undefined, pendingItems: () => 0 }))
)

export const minuteOf = (millis: number): number => Math.floor(millis / 60_000)
