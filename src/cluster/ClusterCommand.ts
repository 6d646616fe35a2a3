/**
 * `teams-presence-connector run --cluster`: the configuration file as for `run` (its tenant is `default`, unless
 * CONNECTOR_CLUSTER_DEFAULT_TENANT=off), the state in PostgreSQL (CONNECTOR_DATABASE_URL, CONNECTOR_STATE_KEY), the
 * cluster settings from the environment (ClusterSettings.ts). Runs until SIGTERM/SIGINT, which hands the tenants over.
 */
import { Config, Console, Effect, Layer, Redacted } from "effect"
import { ConfigError } from "../config/ConfigFile.ts"
import { loadRunConfiguration } from "../config/RunConfiguration.ts"
import { runUntilStopped } from "../connector/Shutdown.ts"
import { StateStore } from "../state/StateStore.ts"
import { clusterSettingsFromEnv } from "./ClusterSettings.ts"
import { runRunner } from "./ClusterRunner.ts"

export const runClusterRunner = (path: string) =>
  Effect.gen(function*() {
    const { config, logging, settings } = yield* loadRunConfiguration(path)
    return yield* Effect.gen(function*() {
      const fromEnv = Effect.gen(function*() {
        const cluster = yield* clusterSettingsFromEnv(config.http)
        const withDefault = (yield* Config.Literals(["on", "off"], "CONNECTOR_CLUSTER_DEFAULT_TENANT").pipe(Config.withDefault("on"))) === "on"
        return { cluster, withDefault }
      }).pipe(Effect.mapError((error) =>
        new ConfigError({ source: "environment", problems: [{ path: "CONNECTOR_CLUSTER_*", message: String(error.message) }] })
      ))
      const { cluster, withDefault } = yield* fromEnv
      const adminPassword = settings.adminPassword ?? Redacted.make(crypto.randomUUID() + crypto.randomUUID())
      yield* Effect.logInfo(`teams-presence-connector cluster runner starting (${cluster.advertise})`)
      return yield* runUntilStopped(
        // Built in the run's scope (Effect.provide would close the store as soon as the runner has started).
        Layer.build(StateStore.layerPostgres()).pipe(Effect.flatMap((store) =>
          runRunner({ config, defaultSettings: { ...settings, adminPassword }, withDefault, cluster, adminPassword }).pipe(
            Effect.provideContext(store)
          )
        ))
      ).pipe(
        Effect.catchTags({ StateStoreError: reportStart, ClusterError: reportStart })
      )
    }).pipe(Effect.provide(logging))
  }).pipe(Effect.catchTags({ ConfigError: report, DataDirError: report, SealError: report }))

/** A configuration problem: the message is the whole story (exit 1, no stack trace). */
const report = (error: { readonly message: string }) =>
  Console.error(error.message).pipe(Effect.andThen(Effect.sync(() => { process.exitCode = 1 })))

/** The runner could not start: already logged with its reason ("cannot start: …", runUntilStopped), exit 1. */
const reportStart = (_: { readonly message: string }) => Effect.sync(() => { process.exitCode = 1 })
