/**
 * The status page's user table from change streams (status/UserTable.ts): the pipeline's row changes and the writer's
 * confirmations queue in the table's subscriptions, and a build looks only at the users queued since the last one —
 * with 10,000 users, one change rebuilds one row. The pipeline and the writer are narrow fakes over real PubSubs.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, PubSub, Redacted, SubscriptionRef } from "effect"
import { PlanState } from "../../src/connector/PlanState.ts"
import { PresencePipeline, type PresenceRow } from "../../src/connector/PresencePipeline.ts"
import { makePbxSettings, PbxSettings } from "../../src/pbx/PbxSettings.ts"
import { PresenceWriter } from "../../src/pbx/writer/PresenceWriter.ts"
import type { DesiredPresence, WrittenPresence } from "../../src/pbx/writer/WriterState.ts"
import { makeUserTable } from "../../src/status/UserTable.ts"
import { busyRow, key, pbxUser, planOf, sent } from "../support/plans.ts"

const fakes = Effect.gen(function*() {
  const rows = new Map<string, PresenceRow>()
  const written = new Map<string, WrittenPresence>()
  const rowChanges = yield* PubSub.unbounded<ReadonlyArray<string>>()
  const confirmations = yield* PubSub.unbounded<ReadonlyArray<string>>()
  const pipeline = PresencePipeline.of({
    rows: Effect.succeed(rows),
    rowChanges: PubSub.subscribe(rowChanges),
    subscribe: Effect.succeed(Effect.void)
  })
  const writer = PresenceWriter.of({
    write: () => Effect.void,
    writeAll: () => Effect.void,
    flush: Effect.void,
    current: Effect.succeed(written),
    desired: Effect.succeed(new Map<string, DesiredPresence>()),
    confirmations: PubSub.subscribe(confirmations)
  })
  const layer = Layer.mergeAll(
    PlanState.layer,
    Layer.succeed(PresencePipeline, pipeline),
    Layer.succeed(PresenceWriter, writer),
    PbxSettings.layer(makePbxSettings({ appPassword: Redacted.make("unused"), masterPbx: "pbx-master" }))
  )
  return { rows, written, rowChanges, confirmations, layer }
})

describe("the user table from change streams", () => {
  it.effect("row changes and confirmations queue until the next build, which rebuilds only the rows they name", () =>
    Effect.gen(function*() {
      const fake = yield* fakes
      yield* Effect.gen(function*() {
        const planState = yield* PlanState
        const table = yield* makeUserTable()
        const numbers = Array.from({ length: 10_000 }, (_, i) => i + 1)
        for (const n of numbers) fake.rows.set(key(n), busyRow(n, n))
        yield* SubscriptionRef.set(planState.plan, planOf(numbers))
        const first = yield* table()
        assert.lengthOf(first.users, 10_000)
        assert.strictEqual(first.counts.licensed, 10_000)

        fake.rows.set(key(5_000), busyRow(5_000, 99_999))
        fake.written.set(pbxUser(7).guid, sent(70))
        // A change nobody names is not looked for: the build costs what changed, not the size of the table.
        fake.rows.set(key(9_000), busyRow(9_000, 1))
        yield* PubSub.publish(fake.rowChanges, [key(5_000)])
        yield* PubSub.publish(fake.confirmations, [pbxUser(7).guid])
        const after = yield* table()
        const rebuilt = after.users.flatMap((row, i) => (row === first.users[i] ? [] : [row.pbxName]))
        assert.deepStrictEqual(rebuilt.sort(), ["user5000", "user7"])
        assert.strictEqual(after.users[4_999]!.lastChangeAt, 99_999)
        assert.strictEqual(after.users[6]!.written, "busy")
        // The plan's figures are kept while the plan is the same; nothing queued since: the same table, the same figures.
        assert.strictEqual(after.counts, first.counts)
        assert.strictEqual(after.licensing, first.licensing)
        assert.strictEqual(yield* table(), after)
        // A new plan rebuilds the table, so the unnamed change shows up then.
        yield* SubscriptionRef.set(planState.plan, planOf(numbers))
        const replanned = yield* table()
        assert.strictEqual(replanned.users[8_999]!.lastChangeAt, 1)
        assert.notStrictEqual(replanned.counts, after.counts)
      }).pipe(Effect.provide(fake.layer))
    }).pipe(Effect.scoped))
})
