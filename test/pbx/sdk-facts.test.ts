/**
 * The connector and the PBX simulator against the facts checked in innovaphone's SDK and example apps
 * (test/fixtures/conformance/innovaphone-sdk-facts.json): both sides follow the source, not each other.
 */
import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { checkAppLicRequest } from "../../src/pbx/directory/AppLicenceCheck.ts"
import { CheckAppLicResult, isUserObject, replicateStart } from "../../src/pbx/socket/PbxMessages.ts"
import { SimAdminApi } from "../../src/simulators/pbx/SimAdminApi.ts"
import { SystemModel } from "../../src/simulators/pbx/SimulatorModel.ts"
import type { PbxUser } from "../../src/pbx/directory/PbxDirectory.ts"

const facts = JSON.parse(
  readFileSync(new URL("../fixtures/conformance/innovaphone-sdk-facts.json", import.meta.url), "utf8")
) as {
  readonly checkAppLic: {
    readonly request: Record<string, unknown>
    readonly resultLicensed: Record<string, unknown>
    readonly resultNotLicensed: Record<string, unknown>
  }
  readonly replicateStart: { readonly readOnly: { readonly add: boolean; readonly del: boolean } }
  readonly objectTypes: { readonly people: ReadonlyArray<string>; readonly notPeople: ReadonlyArray<string> }
}

const alice: PbxUser = {
  guid: "a".repeat(32), h323: "alice", cn: "Alice", dn: "Alice", e164: "", emails: [], loc: "pbx", node: "root", apps: [], hide: false
}

describe("innovaphone SDK facts", () => {
  it("CheckAppLic: the connector's request has the documented members; both documented results decode", () => {
    const { src: _, ...documented } = facts.checkAppLic.request
    assert.deepStrictEqual(checkAppLicRequest(alice, "App(acme-calculator)"), documented)
    const decode = Schema.decodeUnknownSync(CheckAppLicResult)
    assert.strictEqual(decode(facts.checkAppLic.resultLicensed).ok, true)
    assert.strictEqual(decode(facts.checkAppLic.resultNotLicensed).ok, false)
  })

  it("CheckAppLic: the simulator answers in the documented shape, by h323, guid or cn", () => {
    const model = new SystemModel()
    model.users.set(alice.guid, { user: { guid: alice.guid, h323: "alice", cn: "Alice", licences: ["App(acme-calculator)"] }, home: "pbx" })
    const admin = new SimAdminApi("pbx", model)
    const answers: Array<Record<string, unknown>> = []
    const reply = (result: Record<string, unknown>) => void answers.push({ api: "PbxAdminApi", ...result, src: "src1" })
    admin.receive("CheckAppLic", facts.checkAppLic.request, "src1", reply)
    admin.receive("CheckAppLic", { ...facts.checkAppLic.request, h323: undefined, guid: alice.guid }, "src1", reply)
    admin.receive("CheckAppLic", { api: "PbxAdminApi", mt: "CheckAppLic", cn: "Alice", lic: "App(other)" }, "src1", reply)
    assert.deepStrictEqual(answers, [facts.checkAppLic.resultLicensed, facts.checkAppLic.resultLicensed, facts.checkAppLic.resultNotLicensed])
  })

  it("ReplicateStart: a read-only consumer, no column to update", () => {
    assert.strictEqual(replicateStart.add, facts.replicateStart.readOnly.add)
    assert.strictEqual(replicateStart.del, facts.replicateStart.readOnly.del)
    for (const options of Object.values(replicateStart.columns)) assert.deepStrictEqual(options, {})
    assert.deepStrictEqual([...replicateStart.pseudo], [...facts.objectTypes.people])
  })

  it("object types: people are users and executives; every other documented type is not", () => {
    for (const type of facts.objectTypes.people) assert.isTrue(isUserObject({ pseudo: type }), type)
    for (const type of facts.objectTypes.notPeople) assert.isFalse(isUserObject({ pseudo: type }), type)
  })
})
