/**
 * Configuration problems as an administrator needs them: each with the offending value (secrets masked, unknown keys
 * never echoed) and the environment variable it came from; and the cross-key checks run in the same pass as the
 * schema's, on a copy of the input whose faulty keys are set aside, so one `check-config` lists everything.
 */
import { Cause, Exit, Schema } from "effect"
import { type Problem, schemaProblems } from "../domain/Problems.ts"
import { ConnectorConfig } from "./Config.ts"

/** Keys whose values are secrets: named, never shown (a database URL may carry its password). */
const secretKey = /(^|\.)(clientSecret|appPassword|password)$|^database\.url$/

const maxValue = 80

type Segment = string | number

/** `accounts[0].flow` → ["accounts", 0, "flow"]. */
export const pathSegments = (path: string): ReadonlyArray<Segment> =>
  [...path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] !== undefined ? Number(m[2]) : m[1]!))

const valueAt = (root: unknown, path: ReadonlyArray<Segment>): unknown => {
  let node = root
  for (const key of path) {
    if (node === null || typeof node !== "object") return undefined
    node = (node as Record<Segment, unknown>)[key]
  }
  return node
}

/**
 * The value as the file (or the environment) wrote it, for a problem line: a scalar only, a secret as a mark, never the
 * value of an unknown key (it may be a misspelled secret); undefined when there is none to show.
 */
export const shownValue = (root: unknown, path: string, unknownKey: boolean): string | undefined => {
  if (unknownKey) return undefined
  const value = valueAt(root, pathSegments(path))
  if (secretKey.test(path)) return value === undefined ? undefined : "(a secret, not shown)"
  // Only a value itself: a section could hold secrets under keys nobody knows to mask (a misspelled clientSecret).
  if (value === undefined || (value !== null && typeof value === "object")) return undefined
  const text = JSON.stringify(value) ?? String(value)
  return text.length > maxValue ? text.slice(0, maxValue) + "…" : text
}

/** The environment variable that set `path` (or a key above it), if one did. */
const sourceOf = (sources: ReadonlyMap<string, string>, path: string): string | undefined => {
  for (const [key, variable] of sources) {
    if (path === key || path.startsWith(key + ".") || path.startsWith(key + "[")) return variable
  }
  return undefined
}

/** Each problem with the value it is about and where that value came from. */
export const annotateProblems = (
  problems: ReadonlyArray<Problem>,
  raw: unknown,
  sources: ReadonlyMap<string, string>
): ReadonlyArray<Problem> =>
  problems.map((problem) => {
    const value = shownValue(raw, problem.path, problem.message.startsWith("unknown key"))
    const from = sourceOf(sources, problem.path)
    return { ...problem, ...(value !== undefined ? { value } : {}), ...(from !== undefined ? { from } : {}) }
  })

/** Stand-ins for required keys set aside, chosen so that no cross-key rule fires on them. */
const placeholder = (path: ReadonlyArray<Segment>): unknown => {
  const [first, second, third] = path
  if (path.length === 1 && (first === "tenantId" || first === "clientId")) return "placeholder"
  if (first === "pbx" && path.length === 1) return { appPassword: "placeholder", masterPbx: "placeholder" }
  if (first === "pbx" && path.length === 2 && (second === "appPassword" || second === "masterPbx")) return "placeholder"
  if (first === "accounts" && typeof second === "number") {
    const account = { name: `account-${second}`, username: "placeholder", flow: "deviceCode" }
    if (path.length === 2) return account
    if (path.length === 3 && typeof third === "string" && third in account) return account[third as keyof typeof account]
  }
  return undefined
}

const remove = (root: unknown, path: ReadonlyArray<Segment>): boolean => {
  const parent = valueAt(root, path.slice(0, -1))
  if (parent === null || typeof parent !== "object") return false
  const key = path[path.length - 1]!
  // An array element keeps its place (later indices must still name the same entries): it gets its stand-in.
  if (Array.isArray(parent)) return (parent[key as number] = placeholder(path)) !== undefined
  delete (parent as Record<Segment, unknown>)[key]
  return true
}

const set = (root: unknown, path: ReadonlyArray<Segment>, value: unknown): boolean => {
  const parent = valueAt(root, path.slice(0, -1))
  if (parent === null || typeof parent !== "object") return false
  ;(parent as Record<Segment, unknown>)[path[path.length - 1]!] = value
  return true
}

const decode = (raw: unknown) => Schema.decodeUnknownExit(ConnectorConfig)(raw, { errors: "all", onExcessProperty: "error" })

/**
 * The input with every key the schema refused set aside (its default applies, or a stand-in for a required one), as
 * a configuration the cross-key checks can run on; undefined when no such copy decodes.
 */
export const setAside = (raw: unknown, problems: ReadonlyArray<Problem>): ConnectorConfig | undefined => {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return undefined
  const copy = structuredClone(raw)
  for (const problem of problems) if (!remove(copy, pathSegments(problem.path))) return undefined
  for (let round = 0; round < 3; round++) {
    const exit = decode(copy)
    if (Exit.isSuccess(exit)) return exit.value
    const error = exit.cause.reasons.find(Cause.isFailReason)?.error
    if (error === undefined) return undefined
    for (const missing of schemaProblems(error.issue, "")) {
      const path = pathSegments(missing.path)
      const value = placeholder(path)
      if (value === undefined || !set(copy, path, value)) return undefined
    }
  }
  return undefined
}
