import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { decodeReplicateMessage, type PbxUser } from "../../src/pbx/directory/PbxDirectory.ts"
import { applyCap, appRightVerdict } from "../../src/pbx/directory/Licences.ts"

const captures = JSON.parse(
  readFileSync(new URL("../fixtures/conformance/innovaphone-captures.json", import.meta.url), "utf8")
) as { readonly realReplicateUpdates: ReadonlyArray<string> }

const user = (n: number, apps: ReadonlyArray<string>): PbxUser => ({
  guid: `guid${String(n).padStart(3, "0")}`,
  h323: `user${n}`,
  cn: `User ${n}`,
  dn: `User ${n}`,
  e164: "",
  emails: [],
  loc: "pbx-main",
  node: "root",
  apps,
  hide: false
})

describe("user directory", () => {
  it("decodes the real ReplicateUpdate captures into directory users", () => {
    assert.strictEqual(captures.realReplicateUpdates.length, 3)
    for (const text of captures.realReplicateUpdates) {
      const edit = decodeReplicateMessage(JSON.parse(text))
      assert.strictEqual(edit._tag, "Upsert")
      if (edit._tag !== "Upsert") return
      assert.deepStrictEqual(edit.user, {
        guid: "66eaaee678464cffb9a3c8ae259fedd2",
        h323: "charlottemaihoff",
        cn: "Charlotte Maihoff",
        dn: "Maihoff, Charlotte",
        e164: "403",
        emails: [],
        loc: "pbx-main",
        node: "master",
        apps: [],
        hide: false,
        // The groups column as a real PBX sends it (pbxToTeams.group).
        groups: ["Support", "pats_haus1"]
      })
    }
  })

  it("decodes deletions and reports malformed rows", () => {
    assert.deepStrictEqual(decodeReplicateMessage({ mt: "ReplicateDel", columns: { guid: "g1" } }), { _tag: "Delete", guid: "g1" })
    assert.deepStrictEqual(decodeReplicateMessage({ mt: "ReplicateDel", guid: "g2" }), { _tag: "Delete", guid: "g2" })
    assert.strictEqual(decodeReplicateMessage({ mt: "ReplicateUpdate", columns: { cn: "no guid" } })._tag, "Invalid")
    assert.strictEqual(decodeReplicateMessage({ mt: "ReplicateDel" })._tag, "Invalid")
  })

  it("tells people (no pseudo type, or executive) from other objects of the table", () => {
    const row = (pseudo?: unknown) => ({ mt: "ReplicateAdd", columns: { guid: "g", h323: "x", ...(pseudo !== undefined ? { pseudo } : {}) } })
    for (const pseudo of [undefined, "", "executive", "Executive", { type: "executive" }]) {
      assert.strictEqual(decodeReplicateMessage(row(pseudo))._tag, "Upsert", JSON.stringify(pseudo))
    }
    for (const [pseudo, type] of [["waiting", "waiting"], ["trunk", "trunk"], [{ type: "bc_conf" }, "bc_conf"], ["<pseudo type=\"gw\"/>", "gw"]] as const) {
      assert.deepStrictEqual(decodeReplicateMessage(row(pseudo)), { _tag: "NotAUser", guid: "g", type }, JSON.stringify(pseudo))
    }
  })

  it("reads the comma separated apps column", () => {
    const edit = decodeReplicateMessage({ mt: "ReplicateAdd", columns: { guid: "g", apps: "teams,users, phone" } })
    assert.deepStrictEqual(edit._tag === "Upsert" ? edit.user.apps : undefined, ["teams", "users", "phone"])
  })
})

describe("licences (pure rules)", () => {
  it("appRight: served when the apps column names the App object, in any case", () => {
    assert.deepStrictEqual(appRightVerdict(user(1, ["users", "Teams"]), "teams"), { _tag: "Licensed" })
    const verdict = appRightVerdict(user(2, ["users"]), "teams")
    assert.strictEqual(verdict._tag, "Unlicensed")
    assert.match(verdict._tag === "Unlicensed" ? verdict.reason : "", /tick teams on the user's Apps tab/)
  })

  it("the cap keeps the first licensed users by guid, the same ones whatever the order; others keep their verdict", () => {
    const entitled = Array.from({ length: 12 }, (_, i) => user(i, ["teams"]))
    const others = Array.from({ length: 4 }, (_, i) => user(50 + i, ["users"]))
    const all = [...entitled, ...others]
    const verdicts = new Map(all.map((u) => [u.guid, appRightVerdict(u, "teams")] as const))
    const capped = applyCap(all, verdicts, 10)
    const kept = [...capped].filter(([, v]) => v._tag === "Licensed").map(([guid]) => guid).sort()
    assert.deepStrictEqual(kept, entitled.slice(0, 10).map((u) => u.guid))
    const over = capped.get("guid011")
    assert.match(over?._tag === "Unlicensed" ? over.reason : "", /maxUsers allows 10/)
    assert.match((capped.get("guid050") as { reason: string }).reason, /do not include teams/)
    const again = applyCap([...all].reverse(), verdicts, 10)
    assert.deepStrictEqual([...again].filter(([, v]) => v._tag === "Licensed").map(([guid]) => guid).sort(), kept)
    assert.strictEqual(applyCap(all, verdicts, undefined), verdicts)
  })
})
