/**
 * Problems found in an input an administrator wrote (the configuration file, a simulator's users file): each with the
 * path of the key it concerns, all reported at once, and the wording shared by every such report.
 */
import { Schema, SchemaIssue } from "effect"

export interface Problem {
  readonly path: string
  readonly message: string
  /** The offending value as written (secrets masked), when there is one to show. */
  readonly value?: string
  /** The environment variable the value came from. */
  readonly from?: string
}

export const ProblemList = Schema.Array(Schema.Struct({
  path: Schema.String,
  message: Schema.String,
  value: Schema.optionalKey(Schema.String),
  from: Schema.optionalKey(Schema.String)
}))

const problemLine = (p: Problem): string =>
  `  - ${p.path}${p.value !== undefined ? ` = ${p.value}` : ""}${p.from !== undefined ? ` (from ${p.from})` : ""}: ${p.message}`

/** "<source>: N problems" and one indented line per problem, with its value and where the value came from. */
export const describeProblems = (source: string, problems: ReadonlyArray<Problem>): string =>
  `${source}: ${problems.length} problem${problems.length === 1 ? "" : "s"}\n` + problems.map(problemLine).join("\n")

/** `accounts[0].name`, or "(top level)". */
const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.length === 0
    ? "(top level)"
    : path.map((key, i) => typeof key === "number" ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`).join("")

/**
 * Every issue of a failed decode as a problem, in words for an administrator. `unknownKeyHint` follows "unknown key"
 * (e.g. where the keys are documented).
 */
export const schemaProblems = (issue: SchemaIssue.Issue, unknownKeyHint: string): ReadonlyArray<Problem> =>
  SchemaIssue.makeFormatterStandardSchemaV1()(issue).issues.map((i) => ({
    path: formatPath((i.path ?? []).map((p) => typeof p === "object" && p !== null && "key" in p ? p.key : p) as Array<PropertyKey>),
    message: i.message === "Expected no excess property"
      ? `unknown key (${unknownKeyHint})`
      : i.message === "Missing key"
      ? "required, but missing"
      : i.message
  }))
