/**
 * Projects the parts' states onto the status board twice a second, one consistent snapshot each time: the lights
 * (Lights.ts) with the per-PBX, per-credential and per-shard details, and the user table with the plan's figures
 * (UserTable.ts). The table follows change streams (the pipeline's replaced rows, the writer's confirmed writes) and
 * rebuilds only the rows they named; the lights are read afresh, as sign-in status and recent errors have no stream
 * and a light may change with time alone (reads failing for five minutes). Every change of a light's colour is logged
 * once, with the reason, so the log explains every red light.
 */
import { Clock, Effect, Layer, Option, Ref, Schedule, SubscriptionRef } from "effect"
import { FlowConfig } from "../connector/FlowConfig.ts"
import { PlanState } from "../connector/PlanState.ts"
import { TokenService } from "../graph/auth/TokenService.ts"
import { CertificateStore } from "../graph/notifications/crypto/CertificateStore.ts"
import { PresenceSource } from "../graph/presence/PresenceSource.ts"
import { SubscriptionManager } from "../graph/subscriptions/SubscriptionManager.ts"
import { PbxDirectory } from "../pbx/directory/PbxDirectory.ts"
import { PbxSettings } from "../pbx/PbxSettings.ts"
import { PbxConnections } from "../pbx/socket/PbxConnections.ts"
import { lightLine } from "./LightText.ts"
import { makeProjectionCache } from "./ProjectionCache.ts"
import { RecentErrors } from "./RecentErrors.ts"
import { StatusBoard, type StatusSnapshot } from "./StatusBoard.ts"
import { makeUserTable, type TableFigures } from "./UserTable.ts"

/** How often the board is projected: the changes of half a second make one projection. */
const projectEveryMillis = 500
/** While starting up, a red light is expected: logged as information, not as a warning. */
const graceMillis = 60_000

/** Everything the lights are made of, read afresh on each projection. */
const lightInputs = Effect.fnUntraced(function*() {
  const directoryLoaded = yield* Ref.make(false)
  yield* (yield* PbxDirectory).ready.pipe(Effect.andThen(Ref.set(directoryLoaded, true)), Effect.forkScoped)
  const keyStore = yield* Effect.serviceOption(CertificateStore)
  return {
    board: yield* StatusBoard,
    flow: yield* FlowConfig,
    planState: yield* PlanState,
    connections: yield* PbxConnections,
    masterPbx: (yield* PbxSettings).masterPbx,
    tokens: yield* TokenService,
    errors: yield* RecentErrors,
    manager: yield* Effect.serviceOption(SubscriptionManager),
    source: yield* PresenceSource,
    keyStoreProblem: Option.isSome(keyStore) ? keyStore.value.problem : undefined,
    directoryLoaded
  }
})

type LightInputs = Effect.Success<ReturnType<typeof lightInputs>>

const project = Effect.fn("StatusProjector.project")(function*(
  inputs: LightInputs,
  table: TableFigures,
  cache: ReturnType<typeof makeProjectionCache>
) {
  const subscriptions = Option.isSome(inputs.manager) ? yield* SubscriptionRef.get(inputs.manager.value.state) : undefined
  const now = yield* Clock.currentTimeMillis
  const parts = cache({
    mode: inputs.flow.mode,
    refreshMinutes: inputs.flow.usersRefreshMinutes,
    masterPbx: inputs.masterPbx,
    keyStoreProblem: inputs.keyStoreProblem,
    pbxStates: yield* SubscriptionRef.get(inputs.connections.states),
    directoryLoaded: yield* Ref.get(inputs.directoryLoaded),
    credentials: yield* inputs.tokens.status,
    subscriptions,
    plan: yield* SubscriptionRef.get(inputs.planState.plan),
    recent: yield* inputs.errors.list,
    reads: yield* SubscriptionRef.get(inputs.source.readHealth),
    now
  })
  yield* inputs.board.update((previous): StatusSnapshot => ({ ...previous, ...table, ...parts, now }))
  return parts.lights
})

/** Logs each light whose colour changed since the last call; a red light is a warning with its fix after start-up. */
const colourLog = (startedAt: number) => {
  const lastColours = new Map<string, string>()
  let last: StatusSnapshot["lights"] | undefined
  return Effect.fnUntraced(function*(lights: StatusSnapshot["lights"]) {
    // The same lights as last time (ProjectionCache.ts keeps them while their inputs are the same): nothing to log.
    if (lights === last) return
    last = lights
    const now = yield* Clock.currentTimeMillis
    for (const [name, light] of Object.entries(lights)) {
      const previous = lastColours.get(name)
      if (previous === light.state) continue
      lastColours.set(name, light.state)
      const line = `light ${name} is ${light.state}: ${lightLine(light)}`
      const expected = light.state === "green" || (previous === undefined && now - startedAt < graceMillis)
      const log = expected ? Effect.logInfo(line) : Effect.logWarning(line)
      yield* log.pipe(Effect.annotateLogs({ light: name, state: light.state, ...(light.fix !== undefined ? { fix: light.fix } : {}) }))
    }
  })
}

/**
 * The projection loop: twice a second, one snapshot of the lights and of the user table; the table takes the changes
 * its subscriptions queued meanwhile, so a burst of writes costs one projection and no wake-up per change.
 */
const projection = Effect.fnUntraced(function*(inputs: LightInputs, logColours: ReturnType<typeof colourLog>) {
  const table = yield* makeUserTable()
  const cache = makeProjectionCache()
  while (true) {
    yield* logColours(yield* project(inputs, yield* table(), cache))
    yield* Effect.sleep(projectEveryMillis)
  }
}, Effect.scoped)

export const StatusProjectorLayer = Layer.effectDiscard(Effect.gen(function*() {
  const inputs = yield* lightInputs()
  const logColours = colourLog(yield* Clock.currentTimeMillis)
  // A projection that fails is logged and starts again a second later (with a full rebuild of the table).
  yield* projection(inputs, logColours).pipe(
    Effect.tapCause((cause) => Effect.logError("status projection failed; restarting", cause)),
    Effect.retry(Schedule.spaced("1 second")),
    Effect.forkScoped
  )
}))
