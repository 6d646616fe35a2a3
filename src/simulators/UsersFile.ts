/**
 * The users file both standalone simulators read: the people of a made-up company (who has Teams, which PBX they are
 * registered at) plus each side's made-up credentials. Every key is optional; a missing `users` list means a generated
 * population. Decoding reports every problem with its path at once, as the connector's configuration does.
 */
import { createHash } from "node:crypto"
import { readFile } from "node:fs/promises"
import { Console, Effect, Redacted, Schema } from "effect"
import * as YAML from "yaml"
import { describeProblems, type Problem, ProblemList, schemaProblems } from "../domain/Problems.ts"

export type SetupProblem = Problem

/** A users file or a command-line option that cannot be used; lists every problem at once. */
export class SimulatorSetupError extends Schema.TaggedError<SimulatorSetupError>()("SimulatorSetupError", {
  source: Schema.String,
  problems: ProblemList
}) {
  override get message(): string {
    return describeProblems(this.source, this.problems)
  }
}

/** For the `simulate` commands: prints the problems and makes the process exit 1, without a stack trace. */
export const reportSetupError = (error: SimulatorSetupError) =>
  Console.error(error.message).pipe(Effect.andThen(Effect.sync(() => {
    process.exitCode = 1
  })))

const Email = Schema.String.check(Schema.isPattern(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, { message: "Expected an e-mail address such as alice@contoso.com" }))
const Secret = Schema.RedactedFromValue(Schema.NonEmptyString)
const Name = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_.-]{1,64}$/, { message: "Expected letters, digits, '_', '.' or '-' (at most 64)" }))

export const UsersFilePerson = Schema.Struct({
  name: Schema.NonEmptyString,
  email: Email,
  /** Default: the e-mail address. */
  upn: Schema.optionalKey(Email),
  /** Holds a Teams licence (default true). */
  teams: Schema.optionalKey(Schema.Boolean),
  /** The PBX the user is registered at (default: the master). */
  pbx: Schema.optionalKey(Schema.NonEmptyString),
  /** The PBX `apps` column (default: [appName], i.e. licensed for the connector). */
  apps: Schema.optionalKey(Schema.Array(Schema.String)),
  /** The PBX user name (default: the e-mail's local part). */
  h323: Schema.optionalKey(Name)
})

export const UsersFileAccount = Schema.Struct({
  upn: Email,
  password: Schema.optionalKey(Secret),
  /** The password grant is refused (AADSTS50076): sign in with the device code instead. */
  mfa: Schema.optionalKey(Schema.Boolean)
})

export const UsersFilePbx = Schema.Struct({
  name: Name,
  master: Schema.optionalKey(Schema.Boolean),
  /** Service licences on the App object (`info.lics`); none by default, as on a real PBX. */
  lics: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)))
})

export const UsersFile = Schema.Struct({
  tenantId: Schema.optionalKey(Schema.NonEmptyString),
  clientId: Schema.optionalKey(Schema.NonEmptyString),
  clientSecret: Schema.optionalKey(Secret),
  accounts: Schema.optionalKey(Schema.Array(UsersFileAccount)),
  pbxs: Schema.optionalKey(Schema.Array(UsersFilePbx).check(Schema.isMinLength(1))),
  /** The PBX system's domain. */
  domain: Schema.optionalKey(Schema.NonEmptyString),
  /** The App object's name, also the name in users' `apps` column that grants the connector's licence. */
  appName: Schema.optionalKey(Name),
  users: Schema.optionalKey(Schema.Array(UsersFilePerson))
})
export type UsersFile = typeof UsersFile.Type

/** One person, every default resolved. */
export interface SimPerson {
  readonly name: string
  readonly email: string
  readonly upn: string
  readonly teams: boolean
  readonly pbx: string
  readonly apps: ReadonlyArray<string>
  readonly h323: string
  /** GUID-shaped Entra object id, stable for a given UPN. */
  readonly graphId: string
  /** 32 hex digits PBX guid, stable for a given e-mail address. */
  readonly pbxGuid: string
}

export interface SimPopulation {
  readonly tenantId: string
  readonly clientId: string
  readonly clientSecret: Redacted.Redacted<string>
  readonly accounts: ReadonlyArray<{ readonly upn: string; readonly password: Redacted.Redacted<string> | undefined; readonly mfa: boolean }>
  readonly domain: string
  readonly appName: string
  readonly pbxs: ReadonlyArray<{ readonly name: string; readonly master: boolean; readonly lics: number | undefined }>
  readonly people: ReadonlyArray<SimPerson>
}

export const defaults = {
  tenantId: "11111111-2222-3333-4444-555555555555",
  clientId: "66666666-7777-8888-9999-000000000000",
  clientSecret: "sim-client-secret",
  account: { upn: "presence-1@contoso.com", password: "sim-password" },
  domain: "example.com",
  appName: "teams-presence",
  emailDomain: "contoso.com",
  pbxs: ["pbx-master", "pbx-slave"]
} as const

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex")

/** A deterministic GUID-shaped id (version 4 layout) from a key, so restarts keep the same ids. */
export const guidFrom = (key: string): string => {
  const h = sha256(key.toLowerCase())
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`
}

const pbxGuidFrom = (email: string): string => sha256(`pbx:${email.toLowerCase()}`).slice(0, 32)

const h323From = (email: string): string => email.split("@")[0]!.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 64)

/** `count` people "User 1" … `user1@contoso.com` …, all with Teams, alternating between the given PBXs. */
export const generatePeople = (
  count: number,
  pbxNames: ReadonlyArray<string> = defaults.pbxs
): Array<typeof UsersFilePerson.Type> =>
  Array.from({ length: count }, (_, i) => ({
    name: `User ${i + 1}`,
    email: `user${i + 1}@${defaults.emailDomain}`,
    pbx: pbxNames[i % Math.max(pbxNames.length, 1)] ?? defaults.pbxs[0]
  }))

/** What the schema alone cannot say: unknown PBX names, two masters, duplicates. */
const crossProblems = (file: UsersFile): ReadonlyArray<SetupProblem> => {
  const problems: Array<SetupProblem> = []
  const pbxNames = (file.pbxs ?? defaults.pbxs.map((name) => ({ name }))).map((pbx) => pbx.name)
  const seen = new Set<string>()
  pbxNames.forEach((name, i) => {
    if (seen.has(name)) problems.push({ path: `pbxs[${i}].name`, message: `"${name}" is used twice; PBX names must be unique` })
    seen.add(name)
  })
  const masters = (file.pbxs ?? []).filter((pbx) => pbx.master === true).length
  if (masters > 1) problems.push({ path: "pbxs", message: `${masters} PBXs are marked master; a system has one master` })
  const emails = new Set<string>()
  const h323s = new Set<string>()
  ;(file.users ?? []).forEach((person, i) => {
    if (person.pbx !== undefined && !seen.has(person.pbx)) {
      problems.push({ path: `users[${i}].pbx`, message: `no PBX is named "${person.pbx}" (known: ${pbxNames.join(", ")})` })
    }
    const email = person.email.toLowerCase()
    if (emails.has(email)) problems.push({ path: `users[${i}].email`, message: `"${person.email}" is used twice` })
    emails.add(email)
    const h323 = person.h323 ?? h323From(person.email)
    if (h323s.has(h323.toLowerCase())) problems.push({ path: `users[${i}].h323`, message: `PBX user name "${h323}" is used twice; set h323` })
    h323s.add(h323.toLowerCase())
  })
  return problems
}

/** Decodes parsed content (JSON or YAML) into a users file, with every problem at once. */
export const decodeUsersFile = (raw: unknown, source: string): Effect.Effect<UsersFile, SimulatorSetupError> =>
  Schema.decodeUnknownEffect(UsersFile)(raw ?? {}, { errors: "all", onExcessProperty: "error" }).pipe(
    Effect.mapError((error) => new SimulatorSetupError({ source, problems: schemaProblems(error.issue, "misspelled?") })),
    Effect.flatMap((file) => {
      const problems = crossProblems(file)
      return problems.length === 0 ? Effect.succeed(file) : Effect.fail(new SimulatorSetupError({ source, problems }))
    })
  )

/** Parses YAML (which includes JSON) text and decodes it. */
export const parseUsersFile = (text: string, source: string): Effect.Effect<UsersFile, SimulatorSetupError> =>
  Effect.try({
    try: () => {
      const document = YAML.parseDocument(text, { prettyErrors: true })
      if (document.errors.length > 0) throw document.errors[0]
      return document.toJS() as unknown
    },
    catch: (cause) =>
      new SimulatorSetupError({ source, problems: [{ path: "(file)", message: `not valid YAML or JSON: ${(cause as Error).message}` }] })
  }).pipe(Effect.flatMap((raw) => decodeUsersFile(raw, source)))

export const loadUsersFile = Effect.fn("UsersFile.load")(function*(path: string) {
  const text = yield* Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (cause) => new SimulatorSetupError({ source: path, problems: [{ path: "(file)", message: `cannot read: ${(cause as Error).message}` }] })
  })
  return yield* parseUsersFile(text, path)
})

/** Fills every default: `count` generated people when the file lists none (or there is no file). */
export const resolvePopulation = (file: UsersFile, count: number): SimPopulation => {
  const pbxs: ReadonlyArray<typeof UsersFilePbx.Type> = file.pbxs ?? defaults.pbxs.map((name, i) => ({ name, master: i === 0 }))
  const masterName = (pbxs.find((pbx) => pbx.master === true) ?? pbxs[0]!).name
  const appName = file.appName ?? defaults.appName
  const people = (file.users ?? generatePeople(count, pbxs.map((pbx) => pbx.name))).map((person): SimPerson => {
    const upn = person.upn ?? person.email
    return {
      name: person.name,
      email: person.email,
      upn,
      teams: person.teams ?? true,
      pbx: person.pbx ?? masterName,
      apps: person.apps ?? [appName],
      h323: person.h323 ?? h323From(person.email),
      graphId: guidFrom(upn),
      pbxGuid: pbxGuidFrom(person.email)
    }
  })
  return {
    tenantId: file.tenantId ?? defaults.tenantId,
    clientId: file.clientId ?? defaults.clientId,
    clientSecret: file.clientSecret ?? Redacted.make(defaults.clientSecret),
    accounts: (file.accounts ?? [{ upn: defaults.account.upn, password: Redacted.make(defaults.account.password) }]).map((account) => ({
      upn: account.upn,
      password: account.password,
      mfa: account.mfa ?? false
    })),
    domain: file.domain ?? defaults.domain,
    appName,
    pbxs: pbxs.map((pbx) => ({ name: pbx.name, master: pbx.name === masterName, lics: pbx.lics })),
    people
  }
}

/** The population of a users file, or `count` generated people when no file is given. */
export const loadPopulation = Effect.fn("UsersFile.loadPopulation")(function*(options: {
  readonly usersFile?: string | undefined
  readonly users?: number | undefined
}) {
  const file = options.usersFile === undefined ? {} : yield* loadUsersFile(options.usersFile)
  return resolvePopulation(file, options.users ?? 50)
})
