/**
 * `teams-presence-connector demo --cluster` (`npm run demo:cluster`): the cluster demo (ClusterDemo.ts) until
 * Ctrl-C, which stops the PBXs, hands every runner's tenants over and stops it, then PostgreSQL.
 * CONNECTOR_DATABASE_URL, when set, is used instead of an embedded PostgreSQL; CONNECTOR_ADMIN_PASSWORD sets the
 * status page's password (else one is made up and printed).
 */
import { Console, Effect, Layer, Option, Redacted } from "effect"
import { GlobalFlag } from "effect/cli"
import { runUntilStopped } from "../connector/Shutdown.ts"
import { loggingLayer } from "../observability/Logging.ts"
import { printClusterDemoBanner, startClusterDemo } from "./ClusterDemo.ts"

const nonEmpty = (name: string): string | undefined => {
  const value = process.env[name]
  return value !== undefined && value !== "" ? value : undefined
}

export const runClusterDemo = (port: Option.Option<number>) =>
  Effect.gen(function*() {
    const configured = nonEmpty("CONNECTOR_ADMIN_PASSWORD")
    const password = Redacted.make(configured ?? crypto.randomUUID().slice(0, 13))
    const database = nonEmpty("CONNECTOR_DATABASE_URL")
    const chosenPort = Option.getOrUndefined(port) ?? (nonEmpty("PORT") !== undefined ? Number(process.env["PORT"]) : 8080)
    yield* Console.log("cluster demo: starting PostgreSQL, three runners and the simulators…")
    return yield* runUntilStopped(Effect.gen(function*() {
      const demo = yield* startClusterDemo({
        port: chosenPort,
        adminPassword: password,
        databaseUrl: database === undefined ? undefined : Redacted.make(database)
      })
      yield* printClusterDemoBanner(demo, password, configured === undefined)
    }).pipe(Effect.tapError((error) => Console.error(`the cluster demo did not start: ${errorText(error)}`))))
  }).pipe(
    Effect.provide(Layer.unwrap(Effect.map(GlobalFlag.LogLevel, (override) => loggingLayer({ level: "info", format: "auto", override }))))
  )

const errorText = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error && typeof error.message === "string" ? error.message : String(error)
