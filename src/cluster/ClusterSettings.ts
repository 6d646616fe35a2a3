/**
 * How a runner joins the cluster (docs/scaling.md): where the other runners reach it (the effect/cluster socket), the
 * public HTTP address it is known by (its runner id: requests for a tenant it does not own are forwarded there), and
 * the timing of shard locks. Read from the environment; everything else comes from the configuration file.
 */
import { Config, Duration, Effect, Option, Schema } from "effect"
import { RunnerAddress, ShardingConfig } from "effect/cluster"
import type { PbxSocketsSetting } from "./SocketMode.ts"

export type ClusterTiming = "standard" | "fast"

export interface ClusterSettings {
  /** Host and port the other runners connect to (the effect/cluster runner protocol). */
  readonly runnerHost: string
  readonly runnerPort: number
  /** Where the runner socket listens (default: runnerHost). */
  readonly listenHost: string
  /** host:port of this runner's public HTTP server as the other runners reach it; also the runner's id. */
  readonly advertise: string
  readonly timing: ClusterTiming
  /**
   * Where a PBX's websocket is served (SocketMode.ts): `auto` (the default; `any` means the same) per tenant — on the
   * runner it reaches (the runner's PBX side of the tenant, PbxSide.ts) unless the tenant's configuration needs it in
   * its owner's connector; `owner`, every tenant's piped to its owner and served by its connector.
   */
  readonly pbxSockets: PbxSocketsSetting
}

/**
 * Shard-lock timing. `standard`: failover after kill -9 measured 6–12 s (worst case ≈ lock expiry + one assignment
 * refresh ≈ 17 s); `fast` (tests, small clusters on a quiet network): about 4–7 s, at the price of more database writes and
 * a runner whose lock refresh is slower than 3 s (an overloaded machine, a long GC pause) losing its tenants.
 */
export const timings: Record<ClusterTiming, Partial<ShardingConfig.ShardingConfig["Service"]>> = {
  standard: {
    shardLockRefreshInterval: Duration.seconds(5),
    shardLockExpiration: Duration.seconds(15),
    refreshAssignmentsInterval: Duration.seconds(2),
    runnerHealthCheckInterval: Duration.seconds(10)
  },
  fast: {
    shardsPerGroup: 60,
    shardLockRefreshInterval: Duration.seconds(3),
    shardLockExpiration: Duration.seconds(9),
    refreshAssignmentsInterval: Duration.seconds(1),
    runnerHealthCheckInterval: Duration.seconds(3),
    entityMessagePollInterval: Duration.seconds(1)
  }
}

/** The sharding configuration, every field explicit: effect's layerFromEnv would read unprefixed HOST, PORT, … */
export const shardingConfig = (settings: ClusterSettings): ShardingConfig.ShardingConfig["Service"] => ({
  ...ShardingConfig.defaults,
  runnerAddress: Option.some(RunnerAddress.make(settings.runnerHost, settings.runnerPort)),
  runnerListenAddress: Option.some(RunnerAddress.make(settings.listenHost, settings.runnerPort)),
  ...timings[settings.timing]
})

/**
 * CONNECTOR_CLUSTER_HOST (default 127.0.0.1), CONNECTOR_CLUSTER_PORT (default 34431), CONNECTOR_CLUSTER_LISTEN_HOST,
 * CONNECTOR_CLUSTER_ADVERTISE (default `<http.host>:<http.port>`), CONNECTOR_CLUSTER_TIMING (standard | fast),
 * CONNECTOR_CLUSTER_PBX_SOCKETS (auto | any | owner; default auto).
 */
export const clusterSettingsFromEnv = (http: { readonly host: string; readonly port: number }) =>
  Effect.gen(function*() {
    const runnerHost = yield* Config.String("CONNECTOR_CLUSTER_HOST").pipe(Config.withDefault("127.0.0.1"))
    const runnerPort = yield* Config.Port("CONNECTOR_CLUSTER_PORT").pipe(Config.withDefault(34431))
    const listenHost = yield* Config.String("CONNECTOR_CLUSTER_LISTEN_HOST").pipe(Config.withDefault(runnerHost))
    const advertiseHost = http.host === "0.0.0.0" || http.host === "::" ? runnerHost : http.host
    const advertise = yield* Config.String("CONNECTOR_CLUSTER_ADVERTISE").pipe(Config.withDefault(`${advertiseHost}:${http.port}`))
    const timing = yield* Config.Literals(["standard", "fast"], "CONNECTOR_CLUSTER_TIMING").pipe(Config.withDefault("standard" as const))
    const pbxSockets = yield* Config.Literals(["auto", "any", "owner"], "CONNECTOR_CLUSTER_PBX_SOCKETS").pipe(
      Config.withDefault("auto" as const)
    )
    return { runnerHost, runnerPort, listenHost, advertise, timing, pbxSockets } satisfies ClusterSettings
  })

/** The runner could not join the cluster (its socket cannot listen, its settings do not read). */
export class ClusterError extends Schema.TaggedError<ClusterError>()("ClusterError", {
  message: Schema.String
}) {}
