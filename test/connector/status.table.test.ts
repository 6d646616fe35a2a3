/**
 * The status page's user table from change streams (status/UserTable.ts): the plan, the pipeline's row changes and the
 * writer's confirmations arrive as events, and a build looks only at the users the events name — with 10,000 users,
 * one change rebuilds one row. The pipeline and the writer are narrow fakes whose change streams carry one change each.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Redacted, Stream, SubscriptionRef } from "effect"
import { PlanState } from "../../src/connector/PlanState.ts"
import { PresencePipeline, type PresenceRow } from "../../src/connector/PresencePipeline.ts"
import { makePbxSettings, PbxSettings } from "../../src/pbx/PbxSettings.ts"
import { PresenceWriter } from "../../src/pbx/writer/PresenceWriter.ts"
import type { DesiredPresence, WrittenPresence } from "../../src/pbx/writer/WriterState.ts"
import { makeUserTable, type TableEvent, tableEvents } from "../../src/status/UserTable.ts"
import { busyRow, key, pbxUser, planOf, sent } from "../support/plans.ts"

const fakes = Effect.gen(function*() {
  const rows = new Map<string, PresenceRow>()
  const written = new Map<string, WrittenPresence>()
  const pipeline = PresencePipeline.of({
    rows: Effect.succeed(rows),
    rowChanges: Stream.make([key(5_000)]),
    subscribe: Effect.succeed(Effect.void)
  })
  const writer = PresenceWriter.of({
    write: () => Effect.void,
    writeAll: () => Effect.void,
    flush: Effect.void,
    current: Effect.succeed(written),
    desired: Effect.succeed(new Map<string, DesiredPresence>()),
    confirmed: Stream.make([pbxUser(7).guid])
  })
  const layer = Layer.mergeAll(
    PlanState.layer,
    Layer.succeed(PresencePipeline, pipeline),
    Layer.succeed(PresenceWriter, writer),
    PbxSettings.layer(makePbxSettings({ appPassword: Redacted.make("unused"), masterPbx: "pbx-master" }))
  )
  return { rows, written, layer }
})

describe("the user table from change streams", () => {
  it.effect("the plan, row changes and confirmations arrive as events; a build looks only at the users named", () =>
    Effect.gen(function*() {
      const fake = yield* fakes
      yield* Effect.gen(function*() {
        const planState = yield* PlanState
        const table = yield* makeUserTable()
        const numbers = Array.from({ length: 10_000 }, (_, i) => i + 1)
        for (const n of numbers) fake.rows.set(key(n), busyRow(n, n))
        yield* SubscriptionRef.set(planState.plan, planOf(numbers))
        const first = yield* table([])
        assert.lengthOf(first.users, 10_000)
        assert.strictEqual(first.counts.licensed, 10_000)

        fake.rows.set(key(5_000), busyRow(5_000, 99_999))
        fake.written.set(pbxUser(7).guid, sent(70))
        const events = tableEvents(planState, yield* PresencePipeline, yield* PresenceWriter)
        const seen: ReadonlyArray<TableEvent> = yield* Stream.runCollect(Stream.take(events, 3))
        assert.deepStrictEqual(seen.map((event) => event._tag).sort(), ["Confirmed", "Plan", "Rows"])

        const after = yield* table(seen.filter((event) => event._tag !== "Plan"))
        const rebuilt = after.users.flatMap((row, i) => (row === first.users[i] ? [] : [row.pbxName]))
        assert.deepStrictEqual(rebuilt.sort(), ["user5000", "user7"])
        assert.strictEqual(after.users[4_999]!.lastChangeAt, 99_999)
        assert.strictEqual(after.users[6]!.written, "busy")
        // Nothing named: the same table.
        assert.strictEqual((yield* table([])).users, after.users)
      }).pipe(Effect.provide(fake.layer))
    }).pipe(Effect.scoped))
})
