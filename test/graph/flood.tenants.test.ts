/**
 * The inbox's rule for the flood fallback (FloodGate.ts `admitWhenDecryptionIsBehind`, used by the inbox): users are read
 * instead of decrypted only while the decryption backlog itself is over its budget. A POST that waited on the main
 * thread (many tenants of a few items each, the listen queue) while decryption keeps up is decrypted whole.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  admitWhenDecryptionIsBehind,
  FloodEpisode,
  FloodGate,
  minItemsPerRead,
  splitWhenWorthReading
} from "../../src/graph/notifications/FloodGate.ts"

// 1 worker at 500 µs per item: a 200 ms budget holds 400 items for a POST that has just arrived.
const gate = () => new FloodGate({ latencyBudgetMillis: 200, workers: 1, initialMicrosPerItem: 500 })

describe("flood fallback across many tenants", () => {
  it("a POST that waited beyond the budget with a short decryption backlog is decrypted whole", () => {
    const idle = gate()
    // FloodGate alone would read all of it (the whole budget went by before the gate saw it) …
    assert.strictEqual(idle.admit(3, 5_000), 0)
    // … but decryption is not what made it wait: reading would not be sooner.
    assert.strictEqual(admitWhenDecryptionIsBehind(idle, 3, 5_000), 3)
    const busy = gate()
    busy.started(390)
    assert.strictEqual(admitWhenDecryptionIsBehind(busy, 10, 150), 10)
  })

  it("once the decryption backlog itself is over the budget, the time waited counts as before", () => {
    const behind = gate()
    behind.started(390)
    // 390 + 20 items would wait 205 ms for decryption alone: over the budget, so the gate decides with the time waited.
    assert.strictEqual(admitWhenDecryptionIsBehind(behind, 20, 0), 10)
    assert.strictEqual(admitWhenDecryptionIsBehind(behind, 20, 150), behind.admit(20, 150))
    assert.strictEqual(admitWhenDecryptionIsBehind(behind, 20, 150), 0)
    // A flood's single large POST: only what fits is decrypted, fewer the longer it waited.
    const flood = gate()
    assert.strictEqual(admitWhenDecryptionIsBehind(flood, 1_000, 0), 400)
    assert.strictEqual(admitWhenDecryptionIsBehind(flood, 1_000, 150), 100)
  })

  it("with the workers shared by many tenants, the other tenants' items in them count: a tenant's own few do not decide", () => {
    // This tenant has nothing in the workers; 390 items of others are: 10 more fit the budget, 20 do not.
    const shared = gate()
    assert.strictEqual(admitWhenDecryptionIsBehind(shared, 10, 0, 390), 10)
    assert.strictEqual(admitWhenDecryptionIsBehind(shared, 20, 0, 390), 10)
    // Behind: what the time waited leaves room for, after the others' backlog (195 ms) — 50 ms waited leaves none.
    assert.strictEqual(admitWhenDecryptionIsBehind(shared, 20, 50, 390), 0)
    // Its own items in the workers are not counted twice.
    shared.started(300)
    shared.dispatched(300)
    assert.strictEqual(admitWhenDecryptionIsBehind(shared, 10, 5_000, 390), 10)
    // The others' backlog alone over the budget: everything is read.
    assert.strictEqual(admitWhenDecryptionIsBehind(gate(), 3, 0, 1_000), 0)
  })

  it("a budget of 0 decrypts everything", () => {
    const off = new FloodGate({ latencyBudgetMillis: 0, workers: 1, initialMicrosPerItem: 500 })
    off.started(100_000)
    assert.strictEqual(admitWhenDecryptionIsBehind(off, 10_000, 60_000), 10_000)
  })
})

describe("a read only when it spares enough decryption", () => {
  const users = (n: number, prefix = "u") => Array.from({ length: n }, (_, i) => `${prefix}${i}`)
  const userOf = (id: string) => id

  it("a POST of a few items is decrypted whole however late: a read of one or two users costs more than decrypting them", () => {
    assert.strictEqual(minItemsPerRead, 20)
    // None admitted, 3 items: nothing is read.
    assert.deepStrictEqual(splitWhenWorthReading(users(3), 0, userOf), { decrypt: users(3), read: [], diverted: 0 })
    // 19 items over the gate: still decrypted.
    assert.strictEqual(splitWhenWorthReading(users(30), 11, userOf).diverted, 0)
  })

  it("20 items or more over the gate are read: the flood's split, unchanged", () => {
    const split = splitWhenWorthReading(users(30), 10, userOf)
    assert.strictEqual(split.diverted, 20)
    assert.deepStrictEqual(split.read, users(30).slice(10))
    assert.deepStrictEqual(split.decrypt, users(10))
    // A flood's POST of 100 over a full backlog: all read.
    assert.strictEqual(splitWhenWorthReading(users(100), 0, userOf).diverted, 100)
  })

  it("counts the items a read spares, admitted ones of users read anyway among them; a given minimum replaces the default", () => {
    // 15 over the gate, of users whose 10 admitted items are read too: 25 items spared by one read of 15 users.
    const repeated = [...users(10), ...users(10), ...users(5, "v")]
    const split = splitWhenWorthReading(repeated, 10, userOf)
    assert.strictEqual(split.diverted, 25)
    assert.strictEqual(split.read.length, 15)
    assert.strictEqual(splitWhenWorthReading(users(3), 1, userOf, 1).diverted, 2)
  })
})

describe("one flood episode, two log lines", () => {
  it("starts with the first item read instead and ends only at a POST decrypted whole 1 s after the last one read", () => {
    const episode = new FloodEpisode(1_000)
    assert.strictEqual(episode.decryptedWhole(0), undefined)
    assert.strictEqual(episode.divert(0, 0), false)
    assert.strictEqual(episode.divert(40, 100), true)
    // POSTs decrypted whole in between, and more read instead: one episode.
    assert.strictEqual(episode.decryptedWhole(200), undefined)
    assert.strictEqual(episode.divert(25, 600), false)
    assert.strictEqual(episode.decryptedWhole(1_599), undefined)
    assert.strictEqual(episode.diverted, 65)
    assert.strictEqual(episode.decryptedWhole(1_600), 65)
    assert.strictEqual(episode.decryptedWhole(5_000), undefined)
    // The next flood is a new episode.
    assert.strictEqual(episode.divert(30, 6_000), true)
    assert.strictEqual(episode.decryptedWhole(7_000), 30)
  })
})
