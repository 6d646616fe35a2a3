/**
 * The status page's user table (`makeUserRows`): a row is built again only when one of its inputs is another object,
 * unchanged rows keep their identity, changes show up, and users who leave the plan leave the table.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { emptyPlan } from "../../src/connector/Plan.ts"
import { makeUserRows } from "../../src/status/UserRows.ts"
import type { WrittenPresence } from "../../src/pbx/writer/WriterState.ts"
import { busyRow, key, pbxUser, planOf, samePairs, sent, teamsUser } from "../support/plans.ts"

describe("makeUserRows", () => {
  it.effect("unchanged inputs give the same rows, and the same array", () =>
    Effect.gen(function*() {
      const userRows = makeUserRows()
      const plan = planOf([1, 2, 3], [4])
      const rows = new Map([[key(2), busyRow(2, 1_000)]])
      const first = yield* userRows(plan, rows, new Map())
      assert.deepStrictEqual(first.map((r) => [r.pbxName, r.licensed, r.availability]), [
        ["user1", true, "—"],
        ["user2", true, "Busy"],
        ["user3", true, "—"],
        ["user4", false, "—"]
      ])
      // Same plan, a new but equal map of the same entries: nothing is rebuilt.
      const second = yield* userRows(plan, new Map(rows), new Map())
      assert.strictEqual(second, first)
    }))

  it.effect("a changed presence or write rebuilds only that user's row", () =>
    Effect.gen(function*() {
      const userRows = makeUserRows()
      const plan = planOf([1, 2, 3])
      const rows = new Map([[key(1), busyRow(1, 1_000)], [key(2), busyRow(2, 1_000)]])
      const written = new Map<string, WrittenPresence>()
      const before = yield* userRows(plan, rows, written)

      rows.set(key(2), { ...busyRow(2, 2_000), presence: { id: teamsUser(2).id, availability: "Away", activity: "Away" } })
      written.set(pbxUser(1).guid, sent(1_040))
      const after = yield* userRows(plan, rows, written)

      assert.notStrictEqual(after, before)
      assert.strictEqual(after[2], before[2], "user 3 did not change")
      assert.notStrictEqual(after[0], before[0])
      assert.notStrictEqual(after[1], before[1])
      assert.include(after[0]!, { written: "busy", delayMs: 40, lastChangeAt: 1_000 })
      assert.include(after[1]!, { availability: "Away", activity: "Away", lastChangeAt: 2_000, written: "—" })

      // The same objects again: every row keeps its identity.
      const again = yield* userRows(plan, rows, new Map(written))
      assert.strictEqual(again, after)
    }))

  it.effect("users removed from the plan disappear; the others keep their values", () =>
    Effect.gen(function*() {
      const userRows = makeUserRows()
      const plan = planOf([1, 2, 3], [4])
      const rows = new Map([[key(3), busyRow(3, 5_000)]])
      const written = new Map([[pbxUser(3).guid, sent(5_010)]])
      const before = yield* userRows(plan, rows, written)
      assert.lengthOf(before, 4)

      const smaller = { ...samePairs(plan, (n) => n !== 2), unlicensed: [] }
      const after = yield* userRows(smaller, rows, written)
      assert.deepStrictEqual(after.map((r) => r.pbxName), ["user1", "user3"])
      assert.deepStrictEqual(after[1], before[2])

      // An empty plan empties the table.
      assert.deepStrictEqual(yield* userRows(emptyPlan, rows, written), [])
    }))

  it.effect("10,000 users: one changed presence rebuilds one row", () =>
    Effect.gen(function*() {
      const userRows = makeUserRows()
      const numbers = Array.from({ length: 10_000 }, (_, i) => i + 1)
      const plan = planOf(numbers)
      const rows = new Map(numbers.map((n) => [key(n), busyRow(n, n)]))
      const before = yield* userRows(plan, rows, new Map())
      rows.set(key(5_000), busyRow(5_000, 99_999))
      const after = yield* userRows(plan, rows, new Map())
      const rebuilt = after.flatMap((row, i) => (row === before[i] ? [] : [row.pbxName]))
      assert.deepStrictEqual(rebuilt, ["user5000"])
      assert.strictEqual(after[4_999]!.lastChangeAt, 99_999)
    }))

  it.effect("with the changes named, only those users are looked at, and the result equals a full rebuild", () =>
    Effect.gen(function*() {
      const incremental = makeUserRows()
      const full = makeUserRows()
      const numbers = Array.from({ length: 1_000 }, (_, i) => i + 1)
      const plan = planOf(numbers.slice(0, 900), numbers.slice(900))
      const rows = new Map(numbers.map((n) => [key(n), busyRow(n, n)]))
      const written = new Map<string, WrittenPresence>()
      const none = { teamsKeys: new Set<string>(), guids: new Set<string>() }
      const first = yield* incremental(plan, rows, written, none)
      assert.deepStrictEqual(first, yield* full(plan, rows, written))
      // Nothing named: the same array, even though the maps are new.
      assert.strictEqual(yield* incremental(plan, new Map(rows), new Map(written), none), first)

      rows.set(key(10), busyRow(10, 50_000))
      written.set(pbxUser(20).guid, sent(60_000))
      written.set(pbxUser(950).guid, sent(70_000))
      const changes = { teamsKeys: new Set([key(10)]), guids: new Set([pbxUser(20).guid, pbxUser(950).guid, "not-in-the-plan"]) }
      const after = yield* incremental(plan, rows, written, changes)
      assert.deepStrictEqual(after, yield* full(plan, rows, written))
      const rebuilt = after.flatMap((row, i) => (row === first[i] ? [] : [row.pbxName]))
      assert.deepStrictEqual(rebuilt, ["user10", "user20", "user950"])
      assert.strictEqual(after[9]!.lastChangeAt, 50_000)
      assert.strictEqual(after[949]!.written, "—", "user 950 holds no licence: nothing is shown as written")

      // A change the caller did not name is not looked for (the flow and the writer name every change they make)…
      rows.set(key(30), busyRow(30, 80_000))
      assert.strictEqual(yield* incremental(plan, rows, written, none), after)
      // …and a new plan always rebuilds the whole table.
      const next = samePairs(plan, (n) => n !== 1)
      const rebuiltPlan = yield* incremental(next, rows, written, none)
      assert.deepStrictEqual(rebuiltPlan, yield* full(next, rows, written))
      assert.strictEqual(rebuiltPlan.find((row) => row.pbxName === "user30")!.lastChangeAt, 80_000)
    }))
})
