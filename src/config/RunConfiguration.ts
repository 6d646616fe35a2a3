/**
 * What `run` and `run --cluster` do before anything else: the configuration file read and checked, its data directory
 * prepared, and the logging it asks for (with the command line's log level and OTLP when configured).
 */
import { Effect } from "effect"
import { GlobalFlag } from "effect/cli"
import { loggingLayer } from "../observability/Logging.ts"
import { withOtlp } from "../observability/Otlp.ts"
import { loadConfigFile } from "./ConfigFile.ts"
import { prepareDataDir } from "./DataDir.ts"
import { settingsFromConfig } from "./Settings.ts"

export const loadRunConfiguration = Effect.fn("RunConfiguration.load")(function*(path: string) {
  const config = yield* loadConfigFile(path)
  const settings = yield* settingsFromConfig(config)
  yield* prepareDataDir(settings.state.dataDir)
  const logging = withOtlp(loggingLayer({ level: config.log.level, format: config.log.format, override: yield* GlobalFlag.LogLevel }))
  return { config, settings, logging }
})
