/**
 * What the simulated identity platform has issued: access tokens (checked on every Graph request), refresh tokens
 * (rotated on use) and device codes awaiting approval.
 */
import { Clock, Deferred, Effect, Option } from "effect"
import { Headers } from "effect/http"
import { randomBytes } from "node:crypto"
import { SimHttpError } from "./SimHttp.ts"
import type { DelegatedScopes } from "./SimScopes.ts"

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

/** What a refresh token stands for: the signed-in user and the scopes of the sign-in that issued it. */
export interface RefreshGrant {
  readonly principal: Principal
  readonly scopes: DelegatedScopes
}

export interface DeviceCodeEntry {
  readonly deviceCode: string
  readonly userCode: string
  readonly expiresAt: number
  /** The scopes asked for at `/devicecode`; they decide the answer once the code is redeemed. */
  readonly scopes: DelegatedScopes
  approvedUpn: string | undefined
  /** Completed the first time the device code is polled while still pending. */
  readonly polled: Deferred.Deferred<void>
}

export interface SimTokens {
  issueToken(principal: Principal): Effect.Effect<{ readonly token: string; readonly expiresIn: number }>
  /** Checks `Authorization: Bearer …`; fails with a 401 InvalidAuthenticationToken. */
  authenticate(headers: Headers.Headers): Effect.Effect<Principal, SimHttpError>
  expireAllTokens(): void

  issueRefreshToken(grant: RefreshGrant): string
  /** Consumes (rotates) a refresh token. */
  redeemRefreshToken(token: string): RefreshGrant | undefined

  createDeviceCode(expiresInSeconds: number, scopes: DelegatedScopes): Effect.Effect<DeviceCodeEntry>
  findDeviceCode(deviceCode: string): DeviceCodeEntry | undefined
  consumeDeviceCode(deviceCode: string): void
  approveDeviceCode(userCode: string, upn: string): Effect.Effect<boolean>
  /** Waits until the device code was polled at least once while pending. */
  awaitDeviceCodePoll(userCode: string): Effect.Effect<void>
}

export interface SimTokensOptions {
  readonly tokenLifetimeSeconds: number
  /** Device codes are approved only for a known user. */
  readonly isKnownUpn: (upn: string) => boolean
  /** Counts every access token issued. */
  readonly onIssued: () => void
}

/** What has been issued: access tokens, refresh tokens and device codes, each by its value. */
interface Issued {
  readonly options: SimTokensOptions
  readonly tokens: Map<string, IssuedToken>
  readonly refreshTokens: Map<string, RefreshGrant>
  readonly deviceCodes: Map<string, DeviceCodeEntry>
}

export const makeSimTokens = (options: SimTokensOptions): SimTokens => {
  const issued: Issued = { options, tokens: new Map(), refreshTokens: new Map(), deviceCodes: new Map() }
  return {
    issueToken: (principal) => issueToken(issued, principal),
    authenticate: (headers) => authenticate(issued, headers),
    expireAllTokens: () => issued.tokens.clear(),
    issueRefreshToken: (grant) => issueRefreshToken(issued, grant),
    redeemRefreshToken: (token) => redeemRefreshToken(issued, token),
    createDeviceCode: (expiresInSeconds, scopes) => createDeviceCode(issued, expiresInSeconds, scopes),
    findDeviceCode: (deviceCode) => issued.deviceCodes.get(deviceCode),
    consumeDeviceCode: (deviceCode) => {
      issued.deviceCodes.delete(deviceCode)
    },
    approveDeviceCode: (userCode, upn) => Effect.sync(() => approveDeviceCode(issued, userCode, upn)),
    awaitDeviceCodePoll: (userCode) =>
      Effect.suspend(() => {
        const entry = byUserCode(issued, userCode)
        return entry === undefined ? Effect.void : Deferred.await(entry.polled)
      })
  }
}

const issueToken = Effect.fnUntraced(function*({ options, tokens }: Issued, principal: Principal) {
  const now = yield* Clock.currentTimeMillis
  const token = `sim-at-${randomBytes(24).toString("base64url")}`
  tokens.set(token, { ...principal, expiresAt: now + options.tokenLifetimeSeconds * 1000 })
  options.onIssued()
  return { token, expiresIn: options.tokenLifetimeSeconds }
})

const unauthorized = (message: string) => new SimHttpError({ status: 401, code: "InvalidAuthenticationToken", message })

const authenticate = Effect.fnUntraced(function*({ tokens }: Issued, headers: Headers.Headers) {
  const header = Option.getOrUndefined(Headers.get(headers, "authorization"))
  if (header === undefined || header.trim() === "") return yield* unauthorized("Access token is empty.")
  const match = /^Bearer\s+(\S+)$/i.exec(header.trim())
  if (match === null) return yield* unauthorized("Access token validation failure. Invalid audience.")
  const token = tokens.get(match[1]!)
  if (token === undefined) return yield* unauthorized("IDX14100: JWT is not well formed, there are no dots (.).")
  if ((yield* Clock.currentTimeMillis) >= token.expiresAt) {
    return yield* unauthorized("Lifetime validation failed, the token is expired.")
  }
  const { expiresAt: _, ...principal } = token
  return principal as Principal
})

const issueRefreshToken = ({ refreshTokens }: Issued, grant: RefreshGrant): string => {
  const token = `sim-rt-${randomBytes(32).toString("base64url")}`
  refreshTokens.set(token, grant)
  return token
}

const redeemRefreshToken = ({ refreshTokens }: Issued, token: string): RefreshGrant | undefined => {
  const grant = refreshTokens.get(token)
  refreshTokens.delete(token)
  return grant
}

const createDeviceCode = Effect.fnUntraced(function*({ deviceCodes }: Issued, expiresInSeconds: number, scopes: DelegatedScopes) {
  const now = yield* Clock.currentTimeMillis
  const userCode = randomBytes(5).toString("hex").toUpperCase().slice(0, 9)
  const entry: DeviceCodeEntry = {
    deviceCode: `sim-dc-${randomBytes(24).toString("base64url")}`,
    userCode,
    expiresAt: now + expiresInSeconds * 1000,
    scopes,
    approvedUpn: undefined,
    polled: yield* Deferred.make<void>()
  }
  deviceCodes.set(entry.deviceCode, entry)
  return entry
})

const byUserCode = ({ deviceCodes }: Issued, userCode: string) => {
  for (const entry of deviceCodes.values()) if (entry.userCode === userCode) return entry
  return undefined
}

const approveDeviceCode = (issued: Issued, userCode: string, upn: string): boolean => {
  const entry = byUserCode(issued, userCode)
  if (entry === undefined || !issued.options.isKnownUpn(upn)) return false
  entry.approvedUpn = upn
  return true
}
