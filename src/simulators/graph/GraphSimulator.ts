/**
 * The Microsoft Graph + identity platform simulator: one HTTP (or, with `tls`, HTTPS) server on 127.0.0.1 serving the
 * identity platform's token endpoints and discovery documents, Graph under `/v1.0`, and the control API under `/_sim`,
 * so `loginBaseUrl = graphBaseUrl = handle.url`. Extensions (subscriptions, delivery) are router layers merged in
 * through `options.extensions`.
 */
import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
import { Clock, Context, Effect, Layer, type Option, type Scope } from "effect"
import { type HttpClient, HttpRouter, HttpServer } from "effect/http"
import { createServer } from "node:http"
import { createServer as createTlsServer } from "node:https"
import { ControlRoutes } from "./ControlRoutes.ts"
import { DiscoveryRoutes } from "./DiscoveryRoutes.ts"
import { GraphRoutes } from "./GraphRoutes.ts"
import { IdentityRoutes, type SimClientSecret } from "./IdentityRoutes.ts"
import { expireSessionsEverySecond, PresenceSessionRoutes } from "./PresenceSessionRoutes.ts"
import type { PresenceInputs } from "./SimPresenceSessions.ts"
import type { SessionCall } from "./SimSessionLog.ts"
import { type SimCounters, type SimPresence, SimState, type SimStatusMessage, type SimUser, type SimUserInput } from "./SimState.ts"

export { type Principal, SimHttpError, SimState, type SimUser, type UserChange } from "./SimState.ts"
export type { PresenceInputs, SessionCall }

/** What an extension may require: the router, the shared state, and an HTTP client (for deliveries). */
export type SimExtension = Layer.Layer<never, never, HttpRouter.HttpRouter | SimState | HttpClient.HttpClient>

export interface SimAccount {
  readonly upn: string
  readonly password?: string | undefined
  readonly mfa?: boolean | undefined
  /** Has a Teams licence (default true). */
  readonly teams?: boolean | undefined
  readonly displayName?: string | undefined
}

export interface GraphSimulatorOptions {
  readonly port?: number | undefined
  readonly tenantId: string
  readonly clientId: string
  readonly clientSecrets?: ReadonlyArray<SimClientSecret> | undefined
  /** Further app registrations in the tenant (client credentials with a secret), e.g. a separate app for presence writes. */
  readonly extraApps?: ReadonlyArray<{ readonly clientId: string; readonly clientSecrets: ReadonlyArray<SimClientSecret> }> | undefined
  /** The registered certificate (PEM) that client assertions must be signed with. */
  readonly certificatePem?: string | undefined
  /** Delegated technical accounts (also listed as users). */
  readonly accounts?: ReadonlyArray<SimAccount> | undefined
  readonly users?: ReadonlyArray<SimUserInput> | undefined
  readonly tokenLifetimeSeconds?: number | undefined
  readonly allowPublicClientFlows?: boolean | undefined
  readonly deviceCodeIntervalSeconds?: number | undefined
  readonly deviceCodeExpiresInSeconds?: number | undefined
  /** getPresencesByUserId rate limit per app (default 1,500 per 30 s, as Graph). */
  readonly presenceRequestsPerWindow?: number | undefined
  readonly presenceWindowSeconds?: number | undefined
  readonly extensions?: ReadonlyArray<SimExtension> | undefined
  /** Serve HTTPS with this certificate (e.g. from `makeTestCa`); the handle's url is then `https://127.0.0.1:<port>`. */
  readonly tls?: { readonly certificatePem: string; readonly privateKeyPem: string } | undefined
}

export interface GraphSimulatorHandle {
  /** `http://127.0.0.1:<port>` (`https://` with TLS): use it as both loginBaseUrl and graphBaseUrl. */
  readonly url: string
  readonly tenantId: string
  readonly clientId: string
  readonly state: SimState["Service"]
  addUser(input: SimUserInput): Effect.Effect<SimUser>
  updateUser(id: string, patch: Partial<Omit<SimUser, "id">>): Effect.Effect<Option.Option<SimUser>>
  removeUser(id: string): Effect.Effect<boolean>
  setTeamsLicence(id: string, enabled: boolean): Effect.Effect<Option.Option<SimUser>>
  setPresence(
    id: string,
    presence: { readonly availability: string; readonly activity: string; readonly statusMessage?: SimStatusMessage | null }
  ): Effect.Effect<Option.Option<SimPresence>>
  /** A status the user picks by hand in Teams (the preferred presence, which wins over every session); undefined clears it. */
  setPreferredPresence(
    id: string,
    preferred: { readonly availability: string; readonly activity: string; readonly expiresInMillis?: number } | undefined
  ): Effect.Effect<boolean>
  /** What a user's presence is made of: the Teams clients, the applications' live sessions, a status picked by hand. */
  presenceInputs(id: string): PresenceInputs | undefined
  /** Every setPresence / clearPresence / setUserPreferredPresence received, in order. */
  readonly sessionLog: () => ReadonlyArray<SessionCall>
  approveDeviceCode(userCode: string, upn: string): Effect.Effect<boolean>
  awaitDeviceCodePoll(userCode: string): Effect.Effect<void>
  readonly faults: {
    throttle(count: number, retryAfterSeconds: number): Effect.Effect<void>
    serverErrors(count: number, status?: number): Effect.Effect<void>
    latency(millis: number): Effect.Effect<void>
    tokenOutage(enabled: boolean): Effect.Effect<void>
    clear: Effect.Effect<void>
  }
  expireAllTokens: Effect.Effect<void>
  readonly counters: Effect.Effect<SimCounters>
}

/** Deterministic GUID-shaped ids, so demo and benchmark runs are reproducible. */
export const simUserId = (index: number): string =>
  `00000000-0000-4000-8000-${index.toString(16).padStart(12, "0")}`

/** `count` users named "User 1" … with a Teams licence; every `unlicensedEvery`-th one without. */
export const generateUsers = (count: number, options: { readonly unlicensedEvery?: number } = {}): Array<SimUserInput> =>
  Array.from({ length: count }, (_, i) => {
    const n = i + 1
    return {
      id: simUserId(n),
      displayName: `User ${n}`,
      userPrincipalName: `user${n}@contoso.com`,
      mail: `user${n}@contoso.com`,
      otherMails: [],
      teams: options.unlicensedEvery === undefined || n % options.unlicensedEvery !== 0
    }
  })

export const GraphSimulator = {
  make: Effect.fnUntraced(function*(options: GraphSimulatorOptions): Effect.fn.Return<GraphSimulatorHandle, never, Scope.Scope> {
    const state = yield* SimState.make({
      tenantId: options.tenantId,
      clientId: options.clientId,
      tokenLifetimeSeconds: options.tokenLifetimeSeconds ?? 3599
    })
    yield* addPopulation(state, options)
    const url = yield* serve(state, options)
    state.setBaseUrl(url)
    yield* expireSessionsEverySecond.pipe(Effect.provideService(SimState, state), Effect.forkScoped)
    return handle(state, options, url)
  })
}

/** The technical accounts (also users) and the users the options name. */
const addPopulation = Effect.fnUntraced(function*(state: SimState["Service"], options: GraphSimulatorOptions) {
  for (const account of options.accounts ?? []) {
    yield* state.addUser({
      displayName: account.displayName ?? account.upn.split("@")[0]!,
      userPrincipalName: account.upn,
      teams: account.teams ?? true,
      password: account.password,
      mfa: account.mfa
    })
  }
  for (const user of options.users ?? []) yield* state.addUser(user)
})

/** Every route of the simulator: identity platform, discovery, Graph, presence sessions, control API, extensions. */
const routes = (options: GraphSimulatorOptions) => {
  const presenceRate = {
    presenceRequestsPerWindow: options.presenceRequestsPerWindow ?? 1500,
    presenceWindowSeconds: options.presenceWindowSeconds ?? 30
  }
  return Layer.mergeAll(
    IdentityRoutes({
      clientSecrets: options.clientSecrets ?? [],
      extraApps: options.extraApps ?? [],
      certificatePem: options.certificatePem,
      allowPublicClientFlows: options.allowPublicClientFlows ?? true,
      deviceCodeIntervalSeconds: options.deviceCodeIntervalSeconds ?? 5,
      deviceCodeExpiresInSeconds: options.deviceCodeExpiresInSeconds ?? 900
    }),
    DiscoveryRoutes,
    GraphRoutes(presenceRate),
    PresenceSessionRoutes(presenceRate),
    ControlRoutes,
    ...(options.extensions ?? [])
  )
}

/** The HTTP (or HTTPS) server on 127.0.0.1 for the scope's life; returns its URL. */
const serve = Effect.fnUntraced(function*(state: SimState["Service"], options: GraphSimulatorOptions) {
  const tls = options.tls
  const server = HttpRouter.serve(routes(options), { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provide([Layer.succeed(SimState, state), NodeHttpClient.layerUndici]),
    Layer.provideMerge(NodeHttpServer.layer(
      () => tls === undefined ? createServer() : createTlsServer({ cert: tls.certificatePem, key: tls.privateKeyPem }),
      { port: options.port ?? 0, host: "127.0.0.1" }
    ))
  )
  const context = yield* Layer.build(server).pipe(Effect.orDie)
  const address = Context.get(context, HttpServer.HttpServer).address
  const scheme = tls === undefined ? "http" : "https"
  return "port" in address ? `${scheme}://127.0.0.1:${address.port}` : `${scheme}://127.0.0.1`
})

const setPreferredPresence = (state: SimState["Service"]): GraphSimulatorHandle["setPreferredPresence"] => (id, preferred) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    state.setPreferred(
      id,
      preferred === undefined ? undefined : {
        availability: preferred.availability,
        activity: preferred.activity,
        expiresAt: now + (preferred.expiresInMillis ?? 24 * 3600_000)
      }
    ))

const faults = (state: SimState["Service"]): GraphSimulatorHandle["faults"] => ({
  throttle: (count, retryAfterSeconds) =>
    Effect.sync(() => {
      state.faults.throttle = { count, retryAfterSeconds }
    }),
  serverErrors: (count, status = 503) =>
    Effect.sync(() => {
      state.faults.serverErrors = { count, status }
    }),
  latency: (millis) =>
    Effect.sync(() => {
      state.faults.latencyMillis = millis
    }),
  tokenOutage: (enabled) =>
    Effect.sync(() => {
      state.faults.tokenOutage = enabled
    }),
  clear: Effect.sync(() => state.clearFaults())
})

const handle = (state: SimState["Service"], options: GraphSimulatorOptions, url: string): GraphSimulatorHandle => ({
  url,
  tenantId: options.tenantId,
  clientId: options.clientId,
  state,
  addUser: state.addUser,
  updateUser: state.updateUser,
  removeUser: state.removeUser,
  setTeamsLicence: (id, enabled) => state.updateUser(id, { teams: enabled }),
  setPresence: state.setPresence,
  setPreferredPresence: setPreferredPresence(state),
  presenceInputs: state.presenceInputs,
  sessionLog: () => [...state.sessionLog],
  approveDeviceCode: state.approveDeviceCode,
  awaitDeviceCodePoll: state.awaitDeviceCodePoll,
  faults: faults(state),
  expireAllTokens: Effect.sync(() => state.expireAllTokens()),
  counters: Effect.sync(() => state.counters())
})

/** The demo's simulator: `userCount` Teams users, one app secret and one password technical account. */
export const startDemoGraphSimulator = (options: {
  readonly userCount: number
  readonly port?: number
  readonly tenantId?: string
  readonly clientId?: string
  readonly clientSecret?: string
  readonly extensions?: ReadonlyArray<SimExtension>
  /** Further app registrations (e.g. a separate one for presence writes). */
  readonly extraApps?: GraphSimulatorOptions["extraApps"]
}) =>
  GraphSimulator.make({
    port: options.port,
    tenantId: options.tenantId ?? "11111111-2222-3333-4444-555555555555",
    clientId: options.clientId ?? "66666666-7777-8888-9999-000000000000",
    clientSecrets: [{ value: options.clientSecret ?? "demo-secret" }],
    accounts: [{ upn: "presence-1@contoso.com", password: "demo-password" }],
    users: generateUsers(options.userCount),
    extensions: options.extensions,
    extraApps: options.extraApps
  })
