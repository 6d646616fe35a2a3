/**
 * Values from outside (a webhook body, a PBX frame, a Graph answer, a peer's address) go into log lines only through
 * `clip`: cut to a bounded length and without control characters, so one request can neither fill the log nor forge
 * a line of it. Pure.
 */

/** The default length of a clipped value: enough to recognise an id, a name or the start of a frame. */
export const defaultClipLength = 120

const render = (value: unknown): string => {
  if (typeof value === "string") return value
  if (value === undefined) return "undefined"
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

// eslint-disable-next-line no-control-regex
const controlCharacters = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g

/** At most `max` characters of `value` (strings as they are, anything else as JSON), plus how much was cut. */
export const clip = (value: unknown, max: number = defaultClipLength): string => {
  // Only the part that is kept is rendered cleanly: a 4 MB string costs a slice, not a scan.
  const text = render(value)
  const kept = text.length > max ? text.slice(0, max) : text
  const clean = kept.replace(controlCharacters, "?")
  return text.length > max ? `${clean}…(+${text.length - max} chars)` : clean
}

/** Clips every value of a record (log annotations built from outside values). */
export const clipAll = (values: Readonly<Record<string, unknown>>, max: number = defaultClipLength): Record<string, string> =>
  Object.fromEntries(Object.entries(values).map(([key, value]) => [key, clip(value, max)]))

/** A count for a log line, with thousands separators ("65,535"). */
export const count = (n: number): string => n.toLocaleString("en-US")
