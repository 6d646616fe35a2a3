/**
 * A light as one line of text, for the log and `/readyz`: the reason, its times in UTC (a log is read beside other
 * logs, in UTC), and the technical cause the reason explains. The status page writes the same fields in the browser's
 * own time zone instead.
 */
import type { Light } from "./StatusBoard.ts"

/** `15:01 UTC`. */
export const utcTime = (ms: number): string => new Date(ms).toISOString().slice(11, 16) + " UTC"

export const lightLine = (light: Light): string =>
  light.reason +
  (light.since !== undefined ? ` since ${utcTime(light.since)}` : "") +
  (light.until !== undefined ? ` until ${utcTime(light.until)}` : "") +
  (light.detail !== undefined ? ` (${light.detail})` : "")
