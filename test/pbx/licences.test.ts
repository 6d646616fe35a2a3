/**
 * The three licensing modes against the PBX simulator over real sockets (docs/pbx-setup.md, "Licences"): the real
 * captures' AppLogin info (unlicensed, no lics) switches nobody off; appLicence asks the master per user with
 * CheckAppLic; without PbxAdminApi the page says which checkmark to set; the optional cap.
 */
import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Effect, SubscriptionRef } from "effect"
import { pbxLight } from "../../src/status/Lights.ts"
import { PbxSimulator, type SimUser } from "../../src/simulators/pbx/PbxSimulator.ts"
import { allLoggedIn, makeUsers, password, startConnector } from "./harness.ts"

const captures = JSON.parse(
  readFileSync(new URL("../fixtures/conformance/innovaphone-captures.json", import.meta.url), "utf8")
) as { readonly realAppLogins: ReadonlyArray<{ readonly message: string }> }

const master = (users: ReadonlyArray<SimUser>, extra: { apis?: ReadonlyArray<string>; lics?: number } = {}) => ({
  name: "pbx-master",
  isMaster: true,
  password,
  appObject: "teams-presence",
  users,
  ...extra
})

const guids = (verdicts: ReadonlyMap<string, { readonly _tag: string }>, tag: string) =>
  [...verdicts].filter(([, verdict]) => verdict._tag === tag).map(([guid]) => guid).sort()

describe("licences", () => {
  it.live("appRight with the real captures' AppLogin info (unlicensed: true, no lics): every user the App is ticked for", () =>
    Effect.gen(function*() {
      // The simulator's AppLogin carries what every real capture carries.
      for (const capture of captures.realAppLogins) {
        const info = (JSON.parse(capture.message) as { info: Record<string, unknown> }).info
        assert.isTrue(info["unlicensed"] !== false && !("lics" in info))
      }
      const granted = makeUsers("r", 4, "pbx-master")
      const other = makeUsers("o", 2, "pbx-master", ["users"])
      const connector = yield* startConnector()
      yield* PbxSimulator.make({ connectUrl: connector.url, domain: "example.com", pbxs: [master([...granted, ...other])] })
      yield* connector.directory.ready
      const state = (yield* SubscriptionRef.get(connector.connections.states)).get("pbx-master")!
      assert.strictEqual(state.unlicensed, true)
      assert.isUndefined(state.lics)
      const pass = yield* connector.licences.assess([...granted, ...other].map(directoryUser))
      assert.deepStrictEqual(guids(pass.verdicts, "Licensed"), granted.map((u) => u.guid).sort())
      assert.deepStrictEqual(guids(pass.verdicts, "Unlicensed"), other.map((u) => u.guid).sort())
      assert.deepStrictEqual(pass.summary, { mode: "appRight", name: "teams-presence", unlicensedFlag: true })
    }).pipe(Effect.scoped))

  it.live("all: every user, whatever the apps column says", () =>
    Effect.gen(function*() {
      const users = makeUsers("a", 3, "pbx-master", [])
      const connector = yield* startConnector({ licensing: "all" })
      yield* PbxSimulator.make({ connectUrl: connector.url, domain: "example.com", pbxs: [master(users)] })
      yield* connector.directory.ready
      const pass = yield* connector.licences.assess(users.map(directoryUser))
      assert.deepStrictEqual(guids(pass.verdicts, "Licensed"), users.map((u) => u.guid).sort())
    }).pipe(Effect.scoped))

  it.live("appLicence: CheckAppLic per user on the master, src-correlated, bounded in flight; exactly the users the PBX confirms", () =>
    Effect.gen(function*() {
      const users = makeUsers("l", 20, "pbx-master", []).map((user, i) => ({ ...user, licences: i % 3 === 0 ? [] : ["App(teams-presence)"] }))
      const connector = yield* startConnector({ licensing: "appLicence", licenceCheckConcurrency: 4 })
      const sim = yield* PbxSimulator.make({
        connectUrl: connector.url,
        domain: "example.com",
        pbxs: [master(users, { apis: ["PbxApi", "PbxTableUsers", "PbxAdminApi"] })]
      })
      yield* connector.directory.ready
      yield* sim.setCheckAppLicBehaviour("pbx-master", { delayMs: 30 })
      const pass = yield* connector.licences.assess(users.map(directoryUser))
      assert.deepStrictEqual(guids(pass.verdicts, "Licensed"), users.filter((u) => u.licences.length > 0).map((u) => u.guid).sort())
      assert.deepStrictEqual(guids(pass.verdicts, "Unlicensed"), users.filter((u) => u.licences.length === 0).map((u) => u.guid).sort())
      assert.strictEqual(pass.summary.name, "App(teams-presence)")
      const requests = sim.peek.checkAppLicLog()
      assert.strictEqual(requests.length, 20)
      assert.isTrue(requests.every((r) => r.lic === "App(teams-presence)" && r.h323 !== undefined && r.src !== undefined))
      assert.strictEqual(new Set(requests.map((r) => r.src)).size, 20, "each request has its own src")
      assert.strictEqual(Math.max(...requests.map((r) => r.inFlight)), 4, "at most 4 in flight, and the bound is used")
    }).pipe(Effect.scoped))

  it.live("appLicence: a user the PBX does not answer in time is unknown, not unlicensed", () =>
    Effect.gen(function*() {
      const users = makeUsers("t", 3, "pbx-master", []).map((user) => ({ ...user, licences: ["App(presence-lic)"] }))
      const connector = yield* startConnector({ licensing: "appLicence", licenceName: "presence-lic", requestTimeoutMs: 200 })
      const sim = yield* PbxSimulator.make({
        connectUrl: connector.url,
        domain: "example.com",
        pbxs: [master(users, { apis: ["PbxApi", "PbxTableUsers", "PbxAdminApi"] })]
      })
      yield* connector.directory.ready
      yield* sim.setCheckAppLicBehaviour("pbx-master", { unanswered: [users[1]!.h323] })
      const pass = yield* connector.licences.assess(users.map(directoryUser))
      assert.deepStrictEqual(guids(pass.verdicts, "Licensed"), [users[0]!.guid, users[2]!.guid].sort())
      const silent = pass.verdicts.get(users[1]!.guid)!
      assert.strictEqual(silent._tag, "Unknown")
      assert.match(silent._tag === "Unknown" ? silent.reason : "", /did not answer CheckAppLic within 200 ms/)
    }).pipe(Effect.scoped))

  it.live("appLicence without PbxAdminApi: the master light names the Admin checkmark, a log line says so, nobody is concluded unlicensed", () =>
    Effect.gen(function*() {
      const users = makeUsers("n", 2, "pbx-master", []).map((user) => ({ ...user, licences: ["App(teams-presence)"] }))
      const connector = yield* startConnector({ licensing: "appLicence" })
      const sim = yield* PbxSimulator.make({ connectUrl: connector.url, domain: "example.com", pbxs: [master(users)] })
      yield* connector.waitStates(allLoggedIn(["pbx-master"]))
      yield* connector.waitStates((states) => (states.get("pbx-master")?.missingApis ?? []).includes("PbxAdminApi"))
      const state = (yield* SubscriptionRef.get(connector.connections.states)).get("pbx-master")!
      assert.deepStrictEqual(state.missingApis, ["PbxAdminApi"])
      assert.match(state.lastError?.fix ?? "", /set the checkmark Admin \(PbxAdminApi\)/)
      const light = pbxLight(state, "pbx-master", true)
      assert.strictEqual(light.state, "red")
      assert.strictEqual(light.fix, "Set the Admin (PbxAdminApi) checkmark on the App object of pbx-master")
      yield* connector.logged((line) => line.includes("does not enable PbxAdminApi; set the checkmark Admin (PbxAdminApi)"))
      const pass = yield* connector.licences.assess(users.map(directoryUser))
      assert.deepStrictEqual(guids(pass.verdicts, "Unknown"), users.map((u) => u.guid).sort())
      assert.match(pass.summary.problem?.fix ?? "", /set the Admin \(PbxAdminApi\) checkmark/)
      assert.strictEqual(sim.peek.checkAppLicLog().length, 0, "no request the App object does not allow")
    }).pipe(Effect.scoped))

  it.live("maxUsers caps the served users, the same ones across restarts; serviceLicences takes the App object's lics", () =>
    Effect.gen(function*() {
      const entitled = makeUsers("c", 12, "pbx-master")
      const run = (users: ReadonlyArray<SimUser>, maxUsers: number | "serviceLicences", lics?: number) =>
        Effect.gen(function*() {
          const connector = yield* startConnector({ maxUsers })
          yield* PbxSimulator.make({ connectUrl: connector.url, domain: "example.com", pbxs: [master(users, lics !== undefined ? { lics } : {})] })
          yield* connector.directory.ready
          const pass = yield* connector.licences.assess(users.map(directoryUser))
          return guids(pass.verdicts, "Licensed")
        }).pipe(Effect.scoped)
      const first = yield* run(entitled, 10)
      assert.deepStrictEqual(first, entitled.slice(0, 10).map((u) => u.guid))
      assert.deepStrictEqual(yield* run([...entitled].reverse(), 10), first)
      assert.deepStrictEqual(yield* run(entitled, "serviceLicences", 5), entitled.slice(0, 5).map((u) => u.guid))
    }))
})

/** A simulator user as the directory holds it (the fields the licence rules read). */
const directoryUser = (user: SimUser) => ({
  guid: user.guid,
  h323: user.h323,
  cn: user.cn,
  dn: user.dn ?? user.cn,
  e164: user.e164 ?? "",
  emails: user.emails ?? [],
  loc: user.loc ?? "pbx-master",
  node: user.node ?? "root",
  apps: user.apps ?? [],
  hide: false
})
