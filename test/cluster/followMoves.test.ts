/** Which users a batch of user-table edits may have moved to another PBX (src/cluster/FollowMoves.ts `movedBy`). */
import { assert, describe, it } from "@effect/vitest"
import { movedBy } from "../../src/cluster/FollowMoves.ts"
import type { PbxUser } from "../../src/pbx/directory/PbxUser.ts"

const user = (guid: string, loc: string, cn = guid): PbxUser => ({
  guid, h323: guid, cn, dn: cn, e164: "", emails: [], loc, node: "root", apps: ["teams-presence"], hide: false
})

describe("movedBy", () => {
  it("names the users whose loc changed and the users added, in one set", () => {
    const moved = movedBy([
      { _tag: "Updated", user: user("a", "pbx-slave"), previous: user("a", "pbx-master") },
      { _tag: "Updated", user: user("b", "pbx-master", "B renamed"), previous: user("b", "pbx-master") },
      { _tag: "Added", user: user("c", "pbx-slave") },
      { _tag: "Removed", user: user("d", "pbx-slave") },
      { _tag: "Updated", user: user("e", ""), previous: user("e", "pbx-slave") }
    ])
    assert.deepStrictEqual([...(moved ?? [])].sort(), ["a", "c", "e"])
  })

  it("names nobody for edits that move no one, and every user after a reload of the table", () => {
    assert.strictEqual(movedBy([{ _tag: "Updated", user: user("b", "pbx-master", "B2"), previous: user("b", "pbx-master") }])?.size, 0)
    assert.strictEqual(movedBy([{ _tag: "Added", user: user("a", "pbx-master") }, { _tag: "Reset", users: new Map() }]), undefined)
  })
})
