import { assert, describe, it } from "@effect/vitest"
import { simulatorNice } from "../../bench/report.ts"

describe("tenants-50's simulator nice value (BENCH_SIM_NICE)", () => {
  it("is 10 when not given, so the simulated systems leave the connector its cores", () => {
    assert.strictEqual(simulatorNice(undefined), 10)
    assert.strictEqual(simulatorNice(""), 10)
  })

  it("takes any whole number from 0 (the connector's priority) to 19", () => {
    assert.strictEqual(simulatorNice("0"), 0)
    assert.strictEqual(simulatorNice("5"), 5)
    assert.strictEqual(simulatorNice("19"), 19)
  })

  it("refuses what is not a nice value, naming it", () => {
    for (const value of ["-1", "20", "2.5", "ten"]) {
      assert.throws(() => simulatorNice(value), new RegExp(`BENCH_SIM_NICE must be a whole number from 0 to 19, not "${value}"`))
    }
  })
})
