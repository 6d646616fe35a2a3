/** The Graph simulator's control API refuses bad bodies with 400 and a reason, and never changes its state for them. */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { GraphSimulator } from "../../src/simulators/graph/GraphSimulator.ts"

describe("Graph simulator control API", () => {
  it.live("bad bodies get 400 with the reason; a good one is applied", () =>
    Effect.scoped(Effect.gen(function*() {
      const sim = yield* GraphSimulator.make({ tenantId: "t", clientId: "c", users: [] })
      const post = (body: string) =>
        Effect.promise(async () => {
          const response = await fetch(sim.url + "/_sim/users", { method: "POST", headers: { "content-type": "application/json" }, body })
          return { status: response.status, body: (await response.json()) as Record<string, unknown> }
        })
      const notJson = yield* post("{nope")
      assert.strictEqual(notJson.status, 400)
      assert.match(String(notJson.body["reason"]), /not JSON/)
      const missing = yield* post(JSON.stringify({ mail: "a@x.com" }))
      assert.strictEqual(missing.status, 400)
      assert.match(String(missing.body["reason"]), /displayName/)
      const users = yield* Effect.promise(async () => (await (await fetch(sim.url + "/_sim/users")).json()) as { value?: Array<unknown> } | Array<unknown>)
      assert.strictEqual(Array.isArray(users) ? users.length : users.value?.length, 0)
      const ok = yield* post(JSON.stringify({ displayName: "Ann", mail: "ann@x.com" }))
      assert.isTrue(ok.status === 200 || ok.status === 201)
    })))
})
