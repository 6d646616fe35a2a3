/**
 * The Graph simulator's state: users, presences, issued tokens, device codes, faults and counters, shared by every
 * route of the simulator (its own and extensions such as subscriptions). Changes are published for extensions.
 */
import { Clock, Context, Deferred, Effect, Option, PubSub, Schema } from "effect"
import { Headers, HttpServerResponse } from "effect/http"
import { randomBytes, randomUUID } from "node:crypto"

export const teamsServicePlanId = "57ff2da0-773e-42df-b2af-ffb7a2317929"

export interface SimUser {
  readonly id: string
  readonly displayName: string
  readonly userPrincipalName: string
  readonly mail: string | null
  readonly otherMails: ReadonlyArray<string>
  readonly accountEnabled: boolean
  /** Holds an enabled TEAMS1 service plan. */
  readonly teams: boolean
  /** Technical accounts only: the password grant checks it. */
  readonly password?: string | undefined
  /** Password grant is refused with AADSTS50076. */
  readonly mfa?: boolean | undefined
}

export type SimUserInput = Partial<SimUser> & { readonly displayName: string }

export interface SimStatusMessage {
  readonly content: string
  readonly expiryDateTime?: string | undefined
}

/** A presence exactly as the simulator answers it on the wire. */
export interface SimPresence {
  readonly id: string
  readonly availability: string
  readonly activity: string
  readonly statusMessage: {
    readonly message: { readonly content: string; readonly contentType: string }
    readonly expiryDateTime: { readonly dateTime: string; readonly timeZone: string }
    readonly publishedDateTime: string
  } | null
  readonly outOfOfficeSettings: { readonly message: string | null; readonly isOutOfOffice: boolean }
  readonly sequenceNumber: string
}

export type UserChange =
  | { readonly _tag: "Updated"; readonly user: SimUser; readonly created: boolean }
  | { readonly _tag: "Deleted"; readonly user: SimUser }

export interface Principal {
  readonly kind: "app" | "delegated"
  readonly appId: string
  readonly tenantId: string
  readonly upn?: string | undefined
  readonly userId?: string | undefined
}

interface IssuedToken extends Principal {
  readonly expiresAt: number
}

export interface DeviceCodeEntry {
  readonly deviceCode: string
  readonly userCode: string
  readonly expiresAt: number
  approvedUpn: string | undefined
  /** Completed the first time the device code is polled while still pending. */
  readonly polled: Deferred.Deferred<void>
}

export interface SimFaults {
  /** The next `count` Graph requests are answered 429 with this Retry-After. */
  throttle: { count: number; retryAfterSeconds: number }
  /** The next `count` Graph requests are answered with `status` (5xx). */
  serverErrors: { count: number; status: number }
  /** Added before every answer (Graph and identity platform). */
  latencyMillis: number
  /** The token and device-code endpoints answer 503. */
  tokenOutage: boolean
}

export interface SimCounters {
  readonly requestsByRoute: Readonly<Record<string, number>>
  readonly tokensIssued: number
  readonly throttled: number
}

/** A Graph-shaped failure raised inside a route; rendered by `SimState.errorResponse`. */
export class SimHttpError extends Schema.TaggedError<SimHttpError>()("SimHttpError", {
  status: Schema.Number,
  code: Schema.String,
  message: Schema.String,
  retryAfterSeconds: Schema.optionalKey(Schema.Number)
}) {}

export interface SimStateOptions {
  readonly tenantId: string
  readonly clientId: string
  readonly tokenLifetimeSeconds: number
}

export const presenceOf = (id: string, sequence: number): SimPresence => ({
  id,
  availability: "Offline",
  activity: "Offline",
  statusMessage: null,
  outOfOfficeSettings: { message: null, isOutOfOffice: false },
  sequenceNumber: sequenceStamp(sequence)
})

/** Lexicographically sortable, like Graph's stamps ("A0129311063"). */
const sequenceStamp = (n: number): string => `A${String(n).padStart(12, "0")}`

export const isoSeconds = (millis: number): string => new Date(millis).toISOString().replace(/\.\d{3}Z$/, "")

export class SimState extends Context.Service<SimState, {
  readonly tenantId: string
  readonly clientId: string
  readonly tokenLifetimeSeconds: number
  /** `http://127.0.0.1:<port>` once the server listens. */
  baseUrl(): string
  setBaseUrl(url: string): void

  listUsers(): ReadonlyArray<SimUser>
  getUser(id: string): SimUser | undefined
  findUserByUpn(upn: string): SimUser | undefined
  addUser(input: SimUserInput): Effect.Effect<SimUser>
  updateUser(id: string, patch: Partial<Omit<SimUser, "id">>): Effect.Effect<Option.Option<SimUser>>
  removeUser(id: string): Effect.Effect<boolean>

  getPresence(id: string): SimPresence | undefined
  setPresence(
    id: string,
    presence: { readonly availability: string; readonly activity: string; readonly statusMessage?: SimStatusMessage | null }
  ): Effect.Effect<Option.Option<SimPresence>>
  readonly presenceChanges: PubSub.PubSub<SimPresence>
  readonly userChanges: PubSub.PubSub<UserChange>

  issueToken(principal: Principal): Effect.Effect<{ readonly token: string; readonly expiresIn: number }>
  /** Checks `Authorization: Bearer …`; fails with a 401 InvalidAuthenticationToken. */
  authenticate(headers: Headers.Headers): Effect.Effect<Principal, SimHttpError>
  expireAllTokens(): void

  issueRefreshToken(principal: Principal): string
  /** Consumes (rotates) a refresh token. */
  redeemRefreshToken(token: string): Principal | undefined

  createDeviceCode(expiresInSeconds: number): Effect.Effect<DeviceCodeEntry>
  findDeviceCode(deviceCode: string): DeviceCodeEntry | undefined
  consumeDeviceCode(deviceCode: string): void
  approveDeviceCode(userCode: string, upn: string): Effect.Effect<boolean>
  /** Waits until the device code was polled at least once while pending. */
  awaitDeviceCodePoll(userCode: string): Effect.Effect<void>

  readonly faults: SimFaults
  clearFaults(): void
  /** Applies latency and the Graph faults (429 storm, 5xx burst) to one Graph request. */
  graphFaults: Effect.Effect<void, SimHttpError>
  count(route: string): void
  countTokenIssued(): void
  countThrottled(): void
  counters(): SimCounters

  /** A Graph-shaped JSON answer with `request-id` / `client-request-id` headers. */
  json(status: number, body: unknown, headers?: Record<string, string>): Effect.Effect<HttpServerResponse.HttpServerResponse>
  /** `{error:{code,message,innerError:{date,"request-id","client-request-id"}}}` */
  errorResponse(error: SimHttpError): Effect.Effect<HttpServerResponse.HttpServerResponse>
}>()("teams-presence-connector/simulators/graph/SimState") {
  static readonly make = Effect.fnUntraced(function*(options: SimStateOptions) {
    let baseUrl = "http://127.0.0.1"
    const users = new Map<string, SimUser>()
    const presences = new Map<string, SimPresence>()
    const tokens = new Map<string, IssuedToken>()
    const refreshTokens = new Map<string, Principal>()
    const deviceCodes = new Map<string, DeviceCodeEntry>()
    const requestsByRoute: Record<string, number> = {}
    let tokensIssued = 0
    let throttled = 0
    let sequence = 1
    const presenceChanges = yield* PubSub.unbounded<SimPresence>()
    const userChanges = yield* PubSub.unbounded<UserChange>()
    const faults: SimFaults = {
      throttle: { count: 0, retryAfterSeconds: 1 },
      serverErrors: { count: 0, status: 503 },
      latencyMillis: 0,
      tokenOutage: false
    }

    const findUserByUpn = (upn: string) => {
      const lower = upn.toLowerCase()
      for (const user of users.values()) if (user.userPrincipalName.toLowerCase() === lower) return user
      return undefined
    }

    const addUser = (input: SimUserInput) =>
      Effect.gen(function*() {
        const id = input.id ?? randomUUID()
        const upn = input.userPrincipalName ?? `${input.displayName.replace(/[^A-Za-z0-9]+/g, ".").toLowerCase()}@contoso.com`
        const user: SimUser = {
          id,
          displayName: input.displayName,
          userPrincipalName: upn,
          mail: input.mail === undefined ? upn : input.mail,
          otherMails: input.otherMails ?? [],
          accountEnabled: input.accountEnabled ?? true,
          teams: input.teams ?? true,
          password: input.password,
          mfa: input.mfa
        }
        const created = !users.has(id)
        users.set(id, user)
        if (!presences.has(id)) presences.set(id, presenceOf(id, sequence++))
        yield* PubSub.publish(userChanges, { _tag: "Updated", user, created })
        return user
      })

    const updateUser = (id: string, patch: Partial<Omit<SimUser, "id">>) =>
      Effect.gen(function*() {
        const current = users.get(id)
        if (current === undefined) return Option.none<SimUser>()
        const user: SimUser = { ...current, ...patch, id }
        users.set(id, user)
        yield* PubSub.publish(userChanges, { _tag: "Updated", user, created: false })
        return Option.some(user)
      })

    const removeUser = (id: string) =>
      Effect.gen(function*() {
        const user = users.get(id)
        if (user === undefined) return false
        users.delete(id)
        presences.delete(id)
        yield* PubSub.publish(userChanges, { _tag: "Deleted", user })
        return true
      })

    const setPresence = (
      id: string,
      input: { readonly availability: string; readonly activity: string; readonly statusMessage?: SimStatusMessage | null }
    ) =>
      Effect.gen(function*() {
        const current = presences.get(id)
        if (current === undefined) return Option.none<SimPresence>()
        const now = yield* Clock.currentTimeMillis
        const statusMessage = input.statusMessage === undefined
          ? current.statusMessage
          : input.statusMessage === null
          ? null
          : {
            message: { content: input.statusMessage.content, contentType: "text" },
            expiryDateTime: { dateTime: input.statusMessage.expiryDateTime ?? "9999-12-31T23:59:59.9999999", timeZone: "UTC" },
            publishedDateTime: new Date(now).toISOString()
          }
        const presence: SimPresence = {
          ...current,
          availability: input.availability,
          activity: input.activity,
          statusMessage,
          outOfOfficeSettings: { message: null, isOutOfOffice: input.activity.toLowerCase() === "outofoffice" },
          sequenceNumber: sequenceStamp(sequence++)
        }
        presences.set(id, presence)
        yield* PubSub.publish(presenceChanges, presence)
        return Option.some(presence)
      })

    const issueToken = (principal: Principal) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const token = `sim-at-${randomBytes(24).toString("base64url")}`
        tokens.set(token, { ...principal, expiresAt: now + options.tokenLifetimeSeconds * 1000 })
        tokensIssued++
        return { token, expiresIn: options.tokenLifetimeSeconds }
      })

    const unauthorized = (message: string) => new SimHttpError({ status: 401, code: "InvalidAuthenticationToken", message })

    const authenticate = (headers: Headers.Headers) =>
      Effect.gen(function*() {
        const header = Option.getOrUndefined(Headers.get(headers, "authorization"))
        if (header === undefined || header.trim() === "") return yield* unauthorized("Access token is empty.")
        const match = /^Bearer\s+(\S+)$/i.exec(header.trim())
        if (match === null) return yield* unauthorized("Access token validation failure. Invalid audience.")
        const issued = tokens.get(match[1]!)
        if (issued === undefined) return yield* unauthorized("IDX14100: JWT is not well formed, there are no dots (.).")
        if ((yield* Clock.currentTimeMillis) >= issued.expiresAt) {
          return yield* unauthorized("Lifetime validation failed, the token is expired.")
        }
        const { expiresAt: _, ...principal } = issued
        return principal as Principal
      })

    const createDeviceCode = (expiresInSeconds: number) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const userCode = randomBytes(5).toString("hex").toUpperCase().slice(0, 9)
        const entry: DeviceCodeEntry = {
          deviceCode: `sim-dc-${randomBytes(24).toString("base64url")}`,
          userCode,
          expiresAt: now + expiresInSeconds * 1000,
          approvedUpn: undefined,
          polled: yield* Deferred.make<void>()
        }
        deviceCodes.set(entry.deviceCode, entry)
        return entry
      })

    const byUserCode = (userCode: string) => {
      for (const entry of deviceCodes.values()) if (entry.userCode === userCode) return entry
      return undefined
    }

    const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
      Effect.gen(function*() {
        const requestId = randomUUID()
        if (faults.latencyMillis > 0) yield* Effect.sleep(faults.latencyMillis)
        return HttpServerResponse.jsonUnsafe(body, {
          status,
          headers: { "request-id": requestId, "client-request-id": requestId, ...headers }
        })
      })

    const errorResponse = (error: SimHttpError) =>
      Effect.gen(function*() {
        const requestId = randomUUID()
        const now = yield* Clock.currentTimeMillis
        const retry = error.retryAfterSeconds
        const body = error.status === 429
          ? {
            error: {
              code: error.code,
              innerError: {
                code: "429",
                date: isoSeconds(now),
                message: "Please retry after",
                "request-id": requestId,
                status: "429"
              },
              message: error.message
            }
          }
          : {
            error: {
              code: error.code,
              message: error.message,
              innerError: { date: isoSeconds(now), "request-id": requestId, "client-request-id": requestId }
            }
          }
        return HttpServerResponse.jsonUnsafe(body, {
          status: error.status,
          headers: {
            "request-id": requestId,
            "client-request-id": requestId,
            ...(retry !== undefined ? { "Retry-After": String(retry) } : {})
          }
        })
      })

    const graphFaults = Effect.gen(function*() {
      if (faults.latencyMillis > 0) yield* Effect.sleep(faults.latencyMillis)
      if (faults.throttle.count > 0) {
        faults.throttle.count--
        throttled++
        return yield* new SimHttpError({
          status: 429,
          code: "TooManyRequests",
          message: "Please retry again later.",
          retryAfterSeconds: faults.throttle.retryAfterSeconds
        })
      }
      if (faults.serverErrors.count > 0) {
        faults.serverErrors.count--
        return yield* new SimHttpError({
          status: faults.serverErrors.status,
          code: faults.serverErrors.status === 503 ? "serviceNotAvailable" : "generalException",
          message: "The service is temporarily unavailable."
        })
      }
    })

    return SimState.of({
      tenantId: options.tenantId,
      clientId: options.clientId,
      tokenLifetimeSeconds: options.tokenLifetimeSeconds,
      baseUrl: () => baseUrl,
      setBaseUrl: (url) => {
        baseUrl = url
      },
      listUsers: () => Array.from(users.values()),
      getUser: (id) => users.get(id),
      findUserByUpn,
      addUser,
      updateUser,
      removeUser,
      getPresence: (id) => presences.get(id),
      setPresence,
      presenceChanges,
      userChanges,
      issueToken,
      authenticate,
      expireAllTokens: () => tokens.clear(),
      issueRefreshToken: (principal) => {
        const token = `sim-rt-${randomBytes(32).toString("base64url")}`
        refreshTokens.set(token, principal)
        return token
      },
      redeemRefreshToken: (token) => {
        const principal = refreshTokens.get(token)
        refreshTokens.delete(token)
        return principal
      },
      createDeviceCode,
      findDeviceCode: (deviceCode) => deviceCodes.get(deviceCode),
      consumeDeviceCode: (deviceCode) => {
        deviceCodes.delete(deviceCode)
      },
      approveDeviceCode: (userCode, upn) =>
        Effect.sync(() => {
          const entry = byUserCode(userCode)
          if (entry === undefined || findUserByUpn(upn) === undefined) return false
          entry.approvedUpn = upn
          return true
        }),
      awaitDeviceCodePoll: (userCode) =>
        Effect.suspend(() => {
          const entry = byUserCode(userCode)
          return entry === undefined ? Effect.void : Deferred.await(entry.polled)
        }),
      faults,
      clearFaults: () => {
        faults.throttle.count = 0
        faults.serverErrors.count = 0
        faults.latencyMillis = 0
        faults.tokenOutage = false
      },
      graphFaults,
      count: (route) => {
        requestsByRoute[route] = (requestsByRoute[route] ?? 0) + 1
      },
      countTokenIssued: () => {
        tokensIssued++
      },
      countThrottled: () => {
        throttled++
      },
      counters: () => ({ requestsByRoute: { ...requestsByRoute }, tokensIssued, throttled }),
      json,
      errorResponse
    })
  })
}
