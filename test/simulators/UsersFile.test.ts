import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { generatePeople, loadPopulation, parseUsersFile, resolvePopulation } from "../../src/simulators/UsersFile.ts"
import { makeTempDir } from "../support/tempDir.ts"

const validYaml = `
tenantId: 0a0a0a0a-1111-2222-3333-444444444444
clientId: 0b0b0b0b-1111-2222-3333-444444444444
clientSecret: file-secret
accounts:
  - { upn: tech@fabrikam.com, password: tech-pw }
  - { upn: mfa@fabrikam.com, mfa: true }
pbxs:
  - { name: hq, master: true, lics: 2 }
  - { name: branch }
domain: fabrikam.local
appName: presence-app
users:
  - { name: Alice Adams, email: alice@fabrikam.com }
  - { name: Bob Brown, email: bob@fabrikam.com, upn: b.brown@fabrikam.com, teams: false, pbx: branch, h323: bob }
  - { name: Carol Clark, email: carol@fabrikam.com, apps: [users] }
`

describe("users file", () => {
  it.effect("a valid file decodes and every default is filled", () =>
    Effect.gen(function*() {
      const file = yield* parseUsersFile(validYaml, "users.yaml")
      const population = resolvePopulation(file, 50)
      assert.strictEqual(population.tenantId, "0a0a0a0a-1111-2222-3333-444444444444")
      assert.strictEqual(Redacted.value(population.clientSecret), "file-secret")
      assert.deepStrictEqual(population.accounts.map((a) => [a.upn, a.password === undefined ? null : Redacted.value(a.password), a.mfa]), [
        ["tech@fabrikam.com", "tech-pw", false],
        ["mfa@fabrikam.com", null, true]
      ])
      assert.deepStrictEqual(population.pbxs, [{ name: "hq", master: true, lics: 2 }, { name: "branch", master: false, lics: undefined }])
      assert.strictEqual(population.domain, "fabrikam.local")
      const [alice, bob, carol] = population.people
      assert.deepInclude(alice!, { upn: "alice@fabrikam.com", teams: true, pbx: "hq", apps: ["presence-app"], h323: "alice" })
      assert.deepInclude(bob!, { upn: "b.brown@fabrikam.com", teams: false, pbx: "branch", h323: "bob" })
      assert.deepStrictEqual(carol!.apps, ["users"])
      assert.match(alice!.graphId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$/)
      assert.match(alice!.pbxGuid, /^[0-9a-f]{32}$/)
      assert.notStrictEqual(alice!.graphId, bob!.graphId)
    }))

  it.effect("JSON is accepted too; ids are stable across loads", () =>
    Effect.gen(function*() {
      const text = JSON.stringify({ users: [{ name: "Dan", email: "dan@contoso.com" }] })
      const a = resolvePopulation(yield* parseUsersFile(text, "users.json"), 5)
      const b = resolvePopulation(yield* parseUsersFile(text, "users.json"), 5)
      assert.strictEqual(a.people.length, 1)
      assert.strictEqual(a.people[0]!.graphId, b.people[0]!.graphId)
      assert.deepStrictEqual(a.pbxs.map((p) => [p.name, p.master]), [["pbx-master", true], ["pbx-slave", false]])
    }))

  it.effect("a file with 3 mistakes reports all 3 paths at once", () =>
    Effect.gen(function*() {
      const text = `
users:
  - { name: Alice, email: not-an-address }
  - { name: Bob, email: bob@contoso.com, teams: "yes" }
pbxs:
  - { name: hq, lics: -1 }
`
      const error = yield* Effect.flip(parseUsersFile(text, "bad.yaml"))
      assert.strictEqual(error._tag, "SimulatorSetupError")
      assert.deepStrictEqual(error.problems.map((p) => p.path).sort(), ["pbxs[0].lics", "users[0].email", "users[1].teams"])
      assert.include(error.message, "bad.yaml: 3 problems")
    }))

  it.effect("cross-key mistakes: unknown PBX, two masters, duplicate e-mail, unknown key", () =>
    Effect.gen(function*() {
      const text = `
pbxs: [{ name: a, master: true }, { name: b, master: true }]
users:
  - { name: A, email: a@contoso.com, pbx: c }
  - { name: B, email: A@contoso.com }
`
      const error = yield* Effect.flip(parseUsersFile(text, "cross.yaml"))
      assert.deepStrictEqual(error.problems.map((p) => p.path), ["pbxs", "users[0].pbx", "users[1].email", "users[1].h323"])
      const excess = yield* Effect.flip(parseUsersFile("usres: []\n", "typo.yaml"))
      assert.deepStrictEqual(excess.problems.map((p) => [p.path, p.message]), [["usres", "unknown key (misspelled?)"]])
      const broken = yield* Effect.flip(parseUsersFile("users: [\n", "broken.yaml"))
      assert.strictEqual(broken.problems[0]!.path, "(file)")
    }))

  it.effect("no file: a generated population of N users over master and slave", () =>
    Effect.gen(function*() {
      const population = yield* loadPopulation({ users: 7 })
      assert.strictEqual(population.people.length, 7)
      assert.deepStrictEqual(population.people.map((p) => p.pbx), ["pbx-master", "pbx-slave", "pbx-master", "pbx-slave", "pbx-master", "pbx-slave", "pbx-master"])
      assert.strictEqual(population.people[2]!.email, "user3@contoso.com")
      assert.isTrue(population.people.every((p) => p.teams && p.apps.includes(population.appName)))
      assert.strictEqual(generatePeople(3, ["only"]).every((p) => p.pbx === "only"), true)
    }))

  it.effect("loads from disk; a missing file is a clear problem", () =>
    Effect.gen(function*() {
      const dir = yield* makeTempDir("users-file-")
      const path = join(dir, "users.yaml")
      writeFileSync(path, validYaml)
      const population = yield* loadPopulation({ usersFile: path, users: 99 })
      assert.strictEqual(population.people.length, 3)
      const missing = yield* Effect.flip(loadPopulation({ usersFile: join(dir, "nope.yaml") }))
      assert.include(missing.problems[0]!.message, "cannot read")
    }))
})
