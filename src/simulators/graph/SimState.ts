/**
 * The Graph simulator's state: users, presences, issued tokens, device codes, faults and counters, shared by every
 * route of the simulator (its own and extensions such as subscriptions). Changes are published for extensions.
 * Each part lives in a module of its own (SimUsers, SimTokens, SimFaults, SimHttp); this one joins them.
 */
import { Context, Effect } from "effect"
import { makeSimFaults, type SimFaultControl } from "./SimFaults.ts"
import { makeSimResponses, type SimResponses } from "./SimHttp.ts"
import { makeSimPresenceRate, type SimPresenceRate } from "./SimPresenceRate.ts"
import { makeSimSessionLog, type SimSessionLog } from "./SimSessionLog.ts"
import { makeSimSigning, type SimSigning } from "./SimSigning.ts"
import { makeSimTokens, type SimTokens } from "./SimTokens.ts"
import { makeSimUsers, type SimUsers } from "./SimUsers.ts"

export type { SimCounters, SimFaults } from "./SimFaults.ts"
export { isoSeconds, SimHttpError } from "./SimHttp.ts"
export type { DeviceCodeEntry, Principal } from "./SimTokens.ts"
export { presenceOf, teamsServicePlanId } from "./SimUsers.ts"
export type { SimPresence, SimStatusMessage, SimUser, SimUserInput, UserChange } from "./SimUsers.ts"

export interface SimStateOptions {
  readonly tenantId: string
  readonly clientId: string
  readonly tokenLifetimeSeconds: number
}

export interface SimStateShape extends SimUsers, SimTokens, SimFaultControl, SimResponses, SimPresenceRate, SimSessionLog {
  readonly tenantId: string
  readonly clientId: string
  readonly tokenLifetimeSeconds: number
  /** The identity platform's signing key (ID tokens, notification validation tokens) and its JWKS. */
  readonly signing: SimSigning
  /** `http://127.0.0.1:<port>` (or `https://…` with TLS) once the server listens. */
  baseUrl(): string
  setBaseUrl(url: string): void
}

export class SimState extends Context.Service<SimState, SimStateShape>()("teams-presence-connector/simulators/graph/SimState") {
  static readonly make = Effect.fnUntraced(function*(options: SimStateOptions) {
    let baseUrl = "http://127.0.0.1"
    const users = yield* makeSimUsers()
    const faults = makeSimFaults()
    const tokens = makeSimTokens({
      tokenLifetimeSeconds: options.tokenLifetimeSeconds,
      isKnownUpn: (upn) => users.findUserByUpn(upn) !== undefined,
      onIssued: faults.countTokenIssued
    })
    const signing = yield* makeSimSigning()
    const sessionLog = yield* makeSimSessionLog()
    return SimState.of({
      tenantId: options.tenantId,
      clientId: options.clientId,
      tokenLifetimeSeconds: options.tokenLifetimeSeconds,
      signing,
      baseUrl: () => baseUrl,
      setBaseUrl: (url) => {
        baseUrl = url
      },
      ...users,
      ...tokens,
      ...faults,
      ...makeSimResponses(() => faults.faults.latencyMillis),
      ...makeSimPresenceRate(faults.countThrottled),
      ...sessionLog
    })
  })
}
