/** The flow's settings (matching, mapping, re-planning, shutdown), as the configuration made them (config/Settings.ts). */
import { Context } from "effect"
import type { FlowSettings } from "../config/Settings.ts"

export class FlowConfig extends Context.Service<FlowConfig, FlowSettings>()("teams-presence-connector/connector/FlowConfig") {}
